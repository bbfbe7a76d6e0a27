"""What streaming costs Temporal: history events per streamed event, and the activity's
wall time with streaming on vs off for the same paced token stream."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from temporalio import activity, workflow

import mistral_workflows as workflows
from bench._common import Row, Servers, plugged_worker
from mistral_workflows.core.task import Task

TOKEN_INTERVAL = 0.001  # a fast LLM: one token per millisecond


@workflows.activity()
async def tokens_streamed(n: int) -> float:
    started = time.perf_counter()
    async with Task(type="token-stream", state={"tokens": []}) as task:
        for i in range(n):
            await asyncio.sleep(TOKEN_INTERVAL)
            await task.update_state({"tokens": [*task.state["tokens"], f" t{i}"]})
    return time.perf_counter() - started


@activity.defn
async def tokens_kept(n: int) -> float:
    started = time.perf_counter()
    state: dict[str, list[str]] = {"tokens": []}
    for i in range(n):
        await asyncio.sleep(TOKEN_INTERVAL)
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
