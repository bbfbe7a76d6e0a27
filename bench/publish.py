"""Publisher throughput: Task.update_state in a real activity vs raw nats-py publish_async.

Both producers yield to the event loop after each message, as a stream awaiting its source
does: otherwise a task folds the updates of one loop turn into one event, and the figure
would count updates, not events.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import timedelta

import nats
import nats.js.errors
from temporalio import workflow

import mistral_workflows as workflows
from bench._common import Row, Servers, plugged_worker, scratch_stream
from mistral_workflows.core import subjects
from mistral_workflows.core.context import current_scope
from mistral_workflows.core.emitter import Emitter
from mistral_workflows.core.filter import EventFilter
from mistral_workflows.core.task import Task

PAYLOAD_PAD = 40  # characters of state per update, like a short LLM chunk


@workflows.activity()
async def stream_counter(n: int) -> float:
    """Publish n updates; returns the events per second from the first update to the last
    acknowledgement (the wait for them that ends every activity, made here so that
    Temporal's own completion round trip is not counted)."""
    started = time.perf_counter()
    async with Task(type="bench", state={"i": 0, "pad": ""}) as task:
        for i in range(n):
            await task.update_state({"i": i, "pad": str(i).rjust(PAYLOAD_PAD, "x")})
            await asyncio.sleep(0)
    emitter = current_scope().emitter
    assert isinstance(emitter, Emitter)
    await emitter.flush()
    return (n + 2) / (time.perf_counter() - started)


@workflow.defn
class PublishBench:
    @workflow.run
    async def run(self, n: int) -> float:
        return await workflow.execute_activity(
            stream_counter, n, start_to_close_timeout=timedelta(minutes=5)
        )


async def event_size(url: str, exec_id: str) -> int:
    """The size of the last event of an execution, as stored."""
    nc = await nats.connect(url)
    subject = EventFilter(workflow_exec_id=exec_id, stream="bench").subject(subjects.DEFAULT_PREFIX)
    msg = await nc.jetstream().get_last_msg(subjects.DEFAULT_STREAM_NAME, subject)
    await nc.close()
    return len(msg.data or b"")


async def raw_rate(url: str, n: int, size: int) -> float:
    """Pipelined publish_async of n messages of `size` bytes into a stream like ours."""
    payload = b"x" * size
    async with scratch_stream(url, "BENCH_RAW") as js:
        started = time.perf_counter()
        futures = []
        for _ in range(n):
            futures.append(await js.publish_async("BENCH_RAW.events", payload))
            await asyncio.sleep(0)
        for future in futures:
            await future
        return n / (time.perf_counter() - started)


ROUNDS = 3


async def run(servers: Servers, n: int) -> list[Row]:
    """Alternate the two producers for a few rounds and compare their medians, so that a
    burst of load from elsewhere on the machine does not decide the ratio."""
    ours: list[float] = []
    raw: list[float] = []
    rounds = ROUNDS if n >= 1000 else 1
    async with plugged_worker(servers, [PublishBench], [stream_counter]) as (client, queue):
        await client.execute_workflow(PublishBench.run, 10, id=f"warm-{queue}", task_queue=queue)
        for i in range(rounds):
            handle = await client.start_workflow(
                PublishBench.run, n, id=f"publish-{queue}-{i}", task_queue=queue
            )
            ours.append(await handle.result())
            # Measured while the worker still runs, so both share the process's conditions.
            size = await event_size(servers.nats_url, handle.id)
            raw.append(await raw_rate(servers.nats_url, n, size))
    ratio = statistics.median(ours) / statistics.median(raw)
    return [
        Row(
            "publish",
            "Task.update_state in an activity, acked by its end",
            statistics.median(ours),
            "ev/s",
        ),
        Row(
            "publish",
            "raw nats-py publish_async, same size, same process",
            statistics.median(raw),
            "ev/s",
        ),
        Row(
            "publish", f"ratio ours / raw (medians of {rounds})", ratio, "x", ">= 0.9", ratio >= 0.9
        ),
    ]
