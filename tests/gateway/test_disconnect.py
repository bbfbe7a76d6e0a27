"""A client that goes away stops its JetStream consumer; keep-alives flow meanwhile."""

from __future__ import annotations

import asyncio
import time

import httpx2 as httpx
import nats

from mistral_workflows.core import subjects
from mistral_workflows.worker import StreamSettings, provision
from tests.support import unique

STREAM = "/v1/workflows/events/stream"


async def _consumers_for(nats_url: str, exec_id: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        infos = await nc.jetstream().consumers_info(subjects.DEFAULT_STREAM_NAME)
    finally:
        await nc.close()
    token = f".{subjects.token(exec_id)}."
    return sum(token in (i.config.filter_subject or "") for i in infos)


async def _wait_for_count(nats_url: str, exec_id: str, count: int) -> int:
    deadline = time.monotonic() + 15
    while (now := await _consumers_for(nats_url, exec_id)) != count:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    return now


async def test_disconnect_deletes_the_consumer(gateway, nats_url):
    """While a client reads, the gateway holds one consumer for its filter and sends
    keep-alive comments (control); once the client disconnects, the consumer is gone."""
    exec_id = unique("gw-disconnect")
    nc = await nats.connect(nats_url)
    await provision(nc.jetstream(), StreamSettings())
    await nc.close()
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream("GET", gateway.url + STREAM, params={"workflow_exec_id": exec_id}) as r,
    ):
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        chunks = r.aiter_text().__aiter__()
        received = ""
        while received.count(": keep-alive") < 2:
            received += await asyncio.wait_for(chunks.__anext__(), 10)
        assert received.startswith(": connected\n\n")
        assert await _wait_for_count(nats_url, exec_id, 1) == 1
    assert await _wait_for_count(nats_url, exec_id, 0) == 0
