"""Workflows and activities of the lifecycle scenario suite."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    import mistral_workflows as workflows
    from mistral_workflows.core.task import Task

FAST_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=5)


@workflows.activity()
async def flaky_stream(fail_times: int) -> str:
    """Streams a token, then fails on the first `fail_times` attempts."""
    async with Task(type="tokens", state={"tokens": []}) as task:
        await task.update_state({"tokens": [f"attempt-{activity.info().attempt}"]})
        if activity.info().attempt <= fail_times:
            raise RuntimeError(f"attempt {activity.info().attempt} failed")
    return "ok"


@workflows.activity()
async def long_stream() -> str:
    """Streams until cancelled (heartbeating so that cancellation arrives)."""
    async with Task(type="tokens", state={"n": 0}) as task:
        for i in range(1, 10_000):
            activity.heartbeat()
            await task.update_state({"n": i})
            await asyncio.sleep(0.05)
    return "never"


@workflows.activity()
async def too_slow() -> str:
    """Outlives its start-to-close timeout."""
    async with Task(type="tokens", state={"n": 0}) as task:
        await task.update_state({"n": 1})
        await asyncio.sleep(30)
    return "never"


@workflows.activity()
async def step(name: str) -> str:
    return f"{name} done"


@workflow.defn
class ChildWithFlakyActivity:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            flaky_stream, 2, start_to_close_timeout=timedelta(seconds=30), retry_policy=FAST_RETRY
        )


@workflow.defn
class ParentOfFlaky:
    @workflow.run
    async def run(self) -> str:
        child_id = f"{workflow.info().workflow_id}-child"
        return await workflow.execute_child_workflow(ChildWithFlakyActivity.run, id=child_id)


@workflow.defn
class CancelsMidStream:
    @workflow.run
    async def run(self) -> str:
        handle = workflow.start_activity(
            long_stream,
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=timedelta(seconds=1),
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        await asyncio.sleep(1)
        handle.cancel()
        try:
            await handle
        except ActivityError:
            return "cancelled"
        return "not cancelled"


async def times_out(slow: Any) -> str:
    """Runs the activity `slow` with a 1 s start-to-close timeout and two attempts; says
    why it gave up."""
    try:
        await workflow.execute_activity(
            slow,
            start_to_close_timeout=timedelta(seconds=1),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=100), maximum_attempts=2
            ),
        )
    except ActivityError as e:
        return f"gave up: {e.cause}"
    return "finished"


@workflow.defn
class TimesOut:
    @workflow.run
    async def run(self) -> str:
        return await times_out(too_slow)


@workflow.defn
class ContinuesTwice:
    @workflow.run
    async def run(self, left: int) -> int:
        await workflow.execute_activity(
            step, f"run {left}", start_to_close_timeout=timedelta(seconds=30)
        )
        if left > 0:
            workflow.continue_as_new(left - 1)
        return left


@workflow.defn(name="Flaky")
class BuggyFlaky:
    @workflow.run
    async def run(self) -> str:
        await workflow.execute_activity(
            step, "before", start_to_close_timeout=timedelta(seconds=30)
        )
        raise RuntimeError("a bug: this fails the workflow task, not the workflow")


@workflow.defn(name="Flaky")
class FixedFlaky:
    @workflow.run
    async def run(self) -> str:
        await workflow.execute_activity(
            step, "before", start_to_close_timeout=timedelta(seconds=30)
        )
        return "fixed"


@workflow.defn
class PlanInWorkflow:
    """A workflow-level task that spans two activities."""

    @workflow.run
    async def run(self) -> dict[str, Any]:
        async with Task(type="plan", state={"done": []}) as plan:
            for name in ("search", "summarise"):
                await workflow.execute_activity(
                    step, name, start_to_close_timeout=timedelta(seconds=30)
                )
                await plan.update_state({"done": [*plan.state["done"], name]})
        return plan.state
