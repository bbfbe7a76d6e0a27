"""Helpers of the operations tests (health, metrics, CORS, logs): a stream read in the
background, events published straight to NATS, and a scrape of /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2 as httpx
import nats
from prometheus_client.parser import text_string_to_metric_families

from mistral_workflows.worker import StreamSettings, provision
from tests.gateway.gateway_support import foreign_event, ids_of

STREAM = "/v1/workflows/events/stream"


async def publish(nats_url: str, workflow_id: str, count: int) -> list[int]:
    """Store `count` events of `workflow_id` (the stream is made if missing); their
    sequences."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await provision(js, StreamSettings())
        subject, body = foreign_event(workflow_id, "Ops", {})
        return [(await js.publish(subject, body)).seq for _ in range(count)]
    finally:
        await nc.close()


class OpenStream:
    """The SSE messages of one stream, collected as they come by a background task."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.status: int | None = None
        self._arrived = asyncio.Event()

    @property
    def ids(self) -> list[int]:
        """The `id:` of each event message so far."""
        return ids_of(self.blocks)

    async def wait_for_events(self, count: int, timeout: float) -> list[int]:
        """The ids once at least `count` events came (fails after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while len(self.ids) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"{len(self.ids)} of {count} events came: {self.blocks}"
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(left, 0.5))
        return self.ids

    async def read(self, http: httpx.AsyncClient, url: str, params: Any, headers: Any) -> None:
        async with http.stream("GET", url, params=params, headers=headers) as response:
            self.status = response.status_code
            buffer = ""
            async for chunk in response.aiter_text():
                *done, buffer = (buffer + chunk).split("\n\n")
                self.blocks += done
                self._arrived.set()


@contextlib.asynccontextmanager
async def open_stream(
    base_url: str, params: Any, headers: Any = None, path: str = STREAM
) -> AsyncIterator[OpenStream]:
    """An event stream read in the background until the block ends."""
    stream = OpenStream()
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as http:
        reading = asyncio.create_task(stream.read(http, base_url + path, params, headers))
        try:
            yield stream
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await reading


def scrape(base_url: str) -> dict[str, float]:
    """The samples of `/metrics`, parsed by Prometheus' own text parser: `name{k="v"}`
    (labels sorted) to value."""
    response = httpx.get(base_url + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples
