"""A small workflow tree for the live page: a progress bar in the root, a token stream in
a child workflow."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import mistral_workflows as workflows
    from examples import fake_llm
    from mistral_workflows.core.task import Task

STEPS = 20
_TIMEOUT = timedelta(seconds=60)


@workflows.activity()
async def count_steps(total: int) -> int:
    async with Task(
        type="progress-stream", state={"progress_idx": 0, "progress_total": total}
    ) as task:
        for i in range(total):
            await asyncio.sleep(0.02)
            await task.update_state({"progress_idx": i + 1})
    return total


@workflows.activity()
async def write_reply(delay: float) -> str:
    async with Task(type="token-stream", state={"tokens": []}) as task:
        async for chunk in fake_llm.stream([], delay=delay):
            token = chunk.choices[0].delta.content
            if token:
                await task.update_state({"tokens": [*task.state["tokens"], token]})
    return "".join(task.state["tokens"])


@workflow.defn
class LiveChild:
    @workflow.run
    async def run(self, delay: float) -> str:
        return await workflow.execute_activity(write_reply, delay, start_to_close_timeout=_TIMEOUT)


@workflow.defn
class LiveParent:
    @workflow.run
    async def run(self, delay: float) -> str:
        await workflow.execute_activity(count_steps, STEPS, start_to_close_timeout=_TIMEOUT)
        return await workflow.execute_child_workflow(
            LiveChild.run, delay, id=f"{workflow.info().workflow_id}-child"
        )
