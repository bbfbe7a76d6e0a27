"""Workflows of the agent tests: they import only temporalio, for the sandbox."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy


@workflow.defn
class ModelCall:
    """Runs one activity by name with quick retries (a model call that may break)."""

    @workflow.run
    async def run(self, activity: str, args: list[Any], attempts: int) -> Any:
        return await workflow.execute_activity(
            activity,
            args=args,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(
                maximum_attempts=attempts, initial_interval=timedelta(milliseconds=100)
            ),
        )
