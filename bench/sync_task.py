"""`Task` in a `def` activity (run by Temporal in a thread, publishing through the worker's
event loop) vs the same stream from an `async def` activity, in the same run.

Both stream n updates of the publish bench's shape; the async producer yields after each
update, so both send one event per update and the figures count events.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import timedelta

from temporalio import workflow

import mistral_workflows as workflows
from bench._common import Row, Servers, plugged_worker
from bench.publish import PAYLOAD_PAD, stream_counter
from mistral_workflows.core.context import current_scope
from mistral_workflows.core.emitter import Emitter
from mistral_workflows.core.task import Task


@workflows.activity()
def sync_counter(n: int) -> float:
    """Publish n updates from the activity's thread; events per second from the first
    update to the last acknowledgement, as `stream_counter` measures."""
    started = time.perf_counter()
    with Task(type="bench", state={"i": 0, "pad": ""}) as task:
        for i in range(n):
            task.update_state({"i": i, "pad": str(i).rjust(PAYLOAD_PAD, "x")})
    scope = current_scope()
    assert isinstance(scope.emitter, Emitter) and scope.loop is not None
    asyncio.run_coroutine_threadsafe(scope.emitter.flush(), scope.loop).result()
    return (n + 2) / (time.perf_counter() - started)


@workflow.defn
class CounterBench:
    @workflow.run
    async def run(self, name: str, n: int) -> float:
        return await workflow.execute_activity(
            name, n, start_to_close_timeout=timedelta(minutes=5), result_type=float
        )


ROUNDS = 3


async def run(servers: Servers, n: int) -> list[Row]:
    """Alternate the two activities for a few rounds and compare their medians."""
    threaded: list[float] = []
    loop: list[float] = []
    rounds = ROUNDS if n >= 1000 else 1
    activities = [sync_counter, stream_counter]
    async with plugged_worker(servers, [CounterBench], activities) as (client, queue):
        for name in ("sync_counter", "stream_counter"):
            await client.execute_workflow(
                CounterBench.run, args=[name, 10], id=f"warm-{name}-{queue}", task_queue=queue
            )
        for i in range(rounds):
            for name, figures in (("sync_counter", threaded), ("stream_counter", loop)):
                figures.append(
                    await client.execute_workflow(
                        CounterBench.run, args=[name, n], id=f"{name}-{queue}-{i}", task_queue=queue
                    )
                )
    ratio = statistics.median(threaded) / statistics.median(loop)
    return [
        Row(
            "sync",
            f"def activity, {n} updates, acked by its end",
            statistics.median(threaded),
            "ev/s",
        ),
        Row("sync", f"async def activity, {n} updates, same run", statistics.median(loop), "ev/s"),
        Row("sync", f"ratio def / async (medians of {rounds})", ratio, "x", ">= 0.7", ratio >= 0.7),
    ]
