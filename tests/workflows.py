"""Workflows used by the tests: they run activities by name, so tests only write activities."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError


@dataclass
class Call:
    """An activity call: its name, arguments and options."""

    activity: str
    args: list[Any] = field(default_factory=list)
    attempts: int = 1
    local: bool = False
    cancel_after: float | None = None
    task_queue: str | None = None


@workflow.defn
class RunActivity:
    """Runs one activity; returns its result, or the failure's message."""

    @workflow.run
    async def run(self, call: Call) -> Any:
        options: dict[str, Any] = {
            "args": call.args,
            "start_to_close_timeout": timedelta(seconds=60),
            "retry_policy": RetryPolicy(maximum_attempts=call.attempts),
        }
        if call.local:
            return await workflow.execute_local_activity(call.activity, **options)
        handle = workflow.start_activity(
            call.activity,
            task_queue=call.task_queue,
            heartbeat_timeout=timedelta(seconds=2),
            # Wait for the activity to finish cancelling, so its last event is in.
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            **options,
        )
        if call.cancel_after is not None:
            await asyncio.sleep(call.cancel_after)
            handle.cancel()
        try:
            return await handle
        except ActivityError as e:
            return {"failed": str(e.cause)}


@workflow.defn
class Parent:
    """Starts a `RunActivity` child with the given call, and runs one activity itself."""

    @workflow.run
    async def run(self, call: Call) -> Any:
        own = await workflow.execute_activity(
            call.activity, args=call.args, start_to_close_timeout=timedelta(seconds=60)
        )
        child = await workflow.execute_child_workflow(
            RunActivity.run, call, id=f"{workflow.info().workflow_id}-child"
        )
        return [own, child]


@workflow.defn
class RunInTurn:
    """Runs activities one after the other; returns their results."""

    @workflow.run
    async def run(self, calls: list[Call]) -> list[Any]:
        results = []
        for call in calls:
            results.append(
                await workflow.execute_activity(
                    call.activity,
                    args=call.args,
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=RetryPolicy(maximum_attempts=call.attempts),
                )
            )
        return results


@workflow.defn
class Noop:
    """Does nothing: only the library's lifecycle events happen."""

    @workflow.run
    async def run(self) -> str:
        return "done"
