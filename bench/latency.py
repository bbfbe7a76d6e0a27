"""Publish-to-consumer latency at a paced rate: `subscribe()` vs a raw nats-py ordered
consumer, one after the other in the same process and on the same server."""

from __future__ import annotations

import asyncio
import time

from nats.js.client import JetStreamContext

from bench._common import Row, Servers, direct_emitter, percentile, scratch_stream
from mistral_workflows import subscribe
from mistral_workflows.core.events import EventType
from mistral_workflows.core.task import Task

RATE = 500


async def paced(n: int, send) -> None:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for i in range(n):
        delay = start + i / RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(i)


async def ours(url: str, n: int) -> list[float]:
    exec_id = f"latency-{time.time_ns()}"
    delays: list[float] = []

    async def consume() -> None:
        async for event in subscribe(url, workflow_exec_id=exec_id, stream="latency"):
            delays.append(time.time_ns() - event.data.event_timestamp)
            if event.data.event_type == EventType.CUSTOM_TASK_COMPLETED:
                return

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.5)
    async with (
        direct_emitter(url, exec_id),
        Task(type="latency", state={"i": 0}) as task,
    ):

        async def send(i: int) -> None:
            await task.update_state({"i": i + 1})

        await paced(n, send)
    await asyncio.wait_for(consumer, 30)
    return delays[1:-1]


async def raw(url: str, n: int) -> list[float]:
    async with scratch_stream(url, "BENCH_LATENCY") as js:
        return await _raw(js, n)


async def _raw(js: JetStreamContext, n: int) -> list[float]:
    delays: list[float] = []
    done = asyncio.Event()

    async def handler(msg) -> None:  # type: ignore[no-untyped-def]
        delays.append(time.time_ns() - int(msg.data))
        if len(delays) == n:
            done.set()

    sub = await js.subscribe("BENCH_LATENCY.>", ordered_consumer=True, cb=handler)

    async def send(i: int) -> None:
        await js.publish_async("BENCH_LATENCY.x", str(time.time_ns()).encode())

    await paced(n, send)
    await asyncio.wait_for(done.wait(), 30)
    await sub.unsubscribe()
    return delays


async def run(servers: Servers, n: int) -> list[Row]:
    mine = [d / 1e6 for d in await ours(servers.nats_url, n)]
    base = [d / 1e6 for d in await raw(servers.nats_url, n)]
    p50, p99 = percentile(mine, 0.5), percentile(mine, 0.99)
    raw50 = percentile(base, 0.5)
    return [
        Row("latency", f"subscribe() p50 at {RATE} ev/s", p50, "ms"),
        Row("latency", f"subscribe() p99 at {RATE} ev/s", p99, "ms", "<= 5", p99 <= 5),
        Row("latency", "subscribe() max", max(mine), "ms"),
        Row("latency", "raw ordered consumer p50", raw50, "ms"),
        Row("latency", "raw ordered consumer p99", percentile(base, 0.99), "ms"),
        Row("latency", "p50 ours - raw", p50 - raw50, "ms", "<= 0.1", p50 - raw50 <= 0.1),
    ]
