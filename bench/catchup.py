"""Catch-up of many late joiners of one finished execution through the gateway: each
replays the history from JetStream over SSE, or walks the cacheable pages (read from
JetStream once, then from the gateway's cache), or revalidates the pages it already has
(`If-None-Match`, answered 304). Time for all joiners, and JetStream API requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx2 as httpx
import nats
import orjson

from bench._common import Row, Servers, direct_emitter
from bench.gateway import gateway
from mistral_workflows import subscribe
from mistral_workflows.core.task import Task

_TYPE = "catchup-stream"
_AT_ONCE = 50  # joiners connecting at the same time
_STREAM = "/v1/workflows/events/stream"
_PAGES = "/v1/workflows/executions/{}/pages"


async def _history(nats_url: str, exec_id: str, updates: int) -> list[int]:
    """A finished token stream of `updates` events; its stored sequences."""
    async with (
        direct_emitter(nats_url, exec_id),
        Task(type=_TYPE, state={"tokens": []}) as task,
    ):
        for i in range(updates):
            await task.update_state({"tokens": [*task.state["tokens"], f" t{i}"]})
            await asyncio.sleep(0)
    events = subscribe(nats_url, workflow_exec_id=exec_id, idle_timeout=1)
    return [e.broker_sequence async for e in events if e.broker_sequence is not None]


async def _api_requests(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        return (await nc.jetstream().account_info()).api.total
    finally:
        await nc.close()


async def _replay(http: httpx.AsyncClient, url: str, exec_id: str, total: int) -> list[int]:
    seqs: list[int] = []
    params = {"workflow_exec_id": exec_id}
    async with http.stream("GET", url + _STREAM, params=params) as response:
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                seqs.append(int(line[4:]))
                if len(seqs) == total:
                    break
    return seqs


async def _pages(
    http: httpx.AsyncClient, url: str, exec_id: str, etags: dict[str, str]
) -> list[int]:
    """Walk the pages; with `etags` (a page URL's ETag), revalidate instead (304)."""
    seqs: list[int] = []
    cursor = None
    while True:
        params = {} if cursor is None else {"cursor": cursor}
        key = f"{cursor}"
        headers = {"If-None-Match": etags[key]} if key in etags else {}
        response = await http.get(url + _PAGES.format(exec_id), params=params, headers=headers)
        if response.status_code == 304:
            return seqs  # Known already: nothing more to read for this joiner.
        page = orjson.loads(response.content)
        etags.setdefault(key, response.headers["etag"])
        seqs += [e["broker_sequence"] for e in page["events"]]
        if not page["complete"]:
            return seqs
        cursor = page["next_cursor"]


async def _joiners(
    n: int, nats_url: str, join: Callable[[httpx.AsyncClient], Awaitable[list[int]]]
) -> tuple[float, int, list[list[int]]]:
    """Run `n` joiners, `_AT_ONCE` at a time: seconds, JetStream API requests, what each got."""
    gate = asyncio.Semaphore(_AT_ONCE)
    limits = httpx.Limits(max_connections=_AT_ONCE, max_keepalive_connections=_AT_ONCE)

    async def one(http: httpx.AsyncClient) -> list[int]:
        async with gate:
            return await join(http)

    before = await _api_requests(nats_url)
    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        got = await asyncio.gather(*(one(http) for _ in range(n)))
    elapsed = time.perf_counter() - start
    requests = await _api_requests(nats_url) - before - 1  # Not the count's own request.
    return elapsed, requests, got


async def run(servers: Servers, n: int) -> list[Row]:
    exec_id = f"catchup-{time.time_ns()}"
    updates = 200 if n >= 100 else 20
    stored = await _history(servers.nats_url, exec_id, updates)
    total = len(stored)
    etags: dict[str, str] = {}
    with gateway(servers.nats_url) as url:
        replay = await _joiners(
            n, servers.nats_url, lambda http: _replay(http, url, exec_id, total)
        )
        paged = await _joiners(n, servers.nats_url, lambda http: _pages(http, url, exec_id, {}))
        async with httpx.AsyncClient(timeout=120) as http:
            await _pages(http, url, exec_id, etags)  # The ETags a returning joiner has.
        revalidated = await _joiners(
            n, servers.nats_url, lambda http: _pages(http, url, exec_id, dict(etags))
        )
    fewer = replay[1] / max(paged[1], 1)
    wrong = sum(got != stored for _, _, results in (replay, paged) for got in results)
    head = f"{n} late joiners of a {total}-event history"
    return [
        Row("catchup", f"{head}: SSE replays, time", replay[0], "s"),
        Row("catchup", "  SSE replays, JetStream API requests", replay[1], "req"),
        Row("catchup", "  pages (cache, cold at first), time", paged[0], "s"),
        Row("catchup", "  pages, JetStream API requests", paged[1], "req"),
        Row("catchup", "  pages revalidated (If-None-Match: 304), time", revalidated[0], "s"),
        Row("catchup", "  pages revalidated, JetStream API requests", revalidated[1], "req"),
        Row("catchup", "  replay time / pages time", replay[0] / paged[0], "x"),
        Row("catchup", "  replays / pages, JetStream requests", fewer, "x", ">= 10", fewer >= 10),
        Row("catchup", "  joiners with a wrong history", wrong, "", "0", wrong == 0),
    ]
