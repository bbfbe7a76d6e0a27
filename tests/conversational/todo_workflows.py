"""A todo list driven in workflow code and in an activity; step 2 may raise."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    import mistral_workflows as workflows
    from mistral_workflows.conversational import TodoList, TodoListItem

STEPS = ["fetch", "parse", "store"]
BROKEN = "parse"
MESSAGE = "the page is not HTML"


async def run_steps(fail: bool) -> list[str]:
    """Work through the steps, each in its item's block; the broken one raises if `fail`."""
    items = [TodoListItem(title=step, description=f"{step} the page") for step in STEPS]
    async with TodoList(items=items):
        for item in items:
            async with item:
                if fail and item.title == BROKEN:
                    raise ApplicationError(MESSAGE, type="BadPage", non_retryable=True)
    return [item.status for item in items]


@workflows.activity()
async def todo_activity(fail: bool) -> list[str]:
    return await run_steps(fail)


@workflows.activity()
def todo_def_activity(fail: bool) -> list[str]:
    """The same steps in a `def` activity's thread: `with`, and no `await`."""
    items = [TodoListItem(title=step, description=f"{step} the page") for step in STEPS]
    with TodoList(items=items):
        for item in items:
            with item:
                if fail and item.title == BROKEN:
                    raise ApplicationError(MESSAGE, type="BadPage", non_retryable=True)
    return [item.status for item in items]


@workflow.defn
class TodoInWorkflow:
    @workflow.run
    async def run(self, fail: bool) -> list[str]:
        return await run_steps(fail)


@workflow.defn
class TodoInActivity:
    @workflow.run
    async def run(self, fail: bool, in_thread: bool = False) -> list[str]:
        return await workflow.execute_activity(
            todo_def_activity if in_thread else todo_activity,
            fail,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
