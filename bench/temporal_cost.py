"""What streaming costs Temporal: history events per streamed event, and the activity's
wall time with streaming on vs off for the same paced token stream (tokens arrive on a
fixed schedule, as from an LLM server; streaming costs time only if the activity falls
behind it)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from temporalio import activity, workflow

import mistral_workflows as workflows
from bench._common import Row, Servers, plugged_worker
from mistral_workflows.core.context import current_scope
from mistral_workflows.core.emitter import Emitter
from mistral_workflows.core.task import Task

TOKEN_INTERVAL = 0.001  # a fast LLM: one token per millisecond


async def next_token(started: float, i: int) -> None:
    """Wait for token i of a source that emits one every TOKEN_INTERVAL from `started`, as
    an LLM server does: its schedule does not move when the consumer is late."""
    delay = started + (i + 1) * TOKEN_INTERVAL - time.perf_counter()
    await asyncio.sleep(max(delay, 0))


@workflows.activity()
async def tokens_streamed(n: int) -> float:
    """Stream n paced tokens; the seconds until the last one is acknowledged."""
    started = time.perf_counter()
    async with Task(type="token-stream", state={"tokens": []}) as task:
        for i in range(n):
            await next_token(started, i)
            await task.update_state({"tokens": [*task.state["tokens"], f" t{i}"]})
    emitter = current_scope().emitter
    assert isinstance(emitter, Emitter)
    await emitter.flush()
    return time.perf_counter() - started


@activity.defn
async def tokens_kept(n: int) -> float:
    """The same tokens, kept in the same state, without streaming."""
    started = time.perf_counter()
    state: dict[str, list[str]] = {"tokens": []}
    for i in range(n):
        await next_token(started, i)
        state = {"tokens": [*state["tokens"], f" t{i}"]}
    return time.perf_counter() - started


@workflow.defn
class CostBench:
    @workflow.run
    async def run(self, name: str, n: int) -> float:
        return await workflow.execute_activity(
            name, n, start_to_close_timeout=timedelta(minutes=5), result_type=float
        )


async def run(servers: Servers, n: int) -> list[Row]:
    activities = [tokens_streamed, tokens_kept]
    async with plugged_worker(servers, [CostBench], activities) as (client, queue):
        runs = {}
        for name, count in (("tokens_streamed", n), ("tokens_streamed", 0), ("tokens_kept", n)):
            handle = await client.start_workflow(
                CostBench.run,
                args=[name, count],
                id=f"cost-{name}-{count}-{queue}",
                task_queue=queue,
            )
            wall = await handle.result()
            history = await handle.fetch_history()
            runs[(name, count)] = (wall, len(history.events))
    per_event = (runs[("tokens_streamed", n)][1] - runs[("tokens_streamed", 0)][1]) / n
    ratio = runs[("tokens_streamed", n)][0] / runs[("tokens_kept", n)][0]
    return [
        Row(
            "temporal",
            "history events added per streamed event",
            per_event,
            "ev",
            "0",
            per_event == 0,
        ),
        Row(
            "temporal",
            f"activity wall time, {n} tokens, streaming on",
            runs[("tokens_streamed", n)][0],
            "s",
        ),
        Row(
            "temporal",
            f"activity wall time, {n} tokens, streaming off",
            runs[("tokens_kept", n)][0],
            "s",
        ),
        Row("temporal", "wall time on / off", ratio, "x", "<= 1.2", ratio <= 1.2),
    ]
