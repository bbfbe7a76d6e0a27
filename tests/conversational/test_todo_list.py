"""`TodoList` in workflow code and in an activity, against real servers: each item turns
`in_progress` then `done`; an exception leaves its item `in_progress`, fails the list with
its message and propagates; the events parse with Mistral's models."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.worker import Replayer

import mistral_workflows as workflows
from mistral_workflows import MistralWorkflowsPlugin, StreamEvent, TaskStates
from mistral_workflows.conversational import TodoListItem
from mistral_workflows.core.events import EventType
from mistral_workflows.dev import free_port
from tests.conversational import mistral_shapes, todo_workflows
from tests.conversational.todo_workflows import BROKEN, MESSAGE, STEPS
from tests.support import (
    official_models,
    plugged_client,
    run_call,
    running_worker,
    task_events,
    unique,
)
from tests.workflows import Call

WORKFLOWS = {
    "workflow": todo_workflows.TodoInWorkflow,
    "activity": todo_workflows.TodoInActivity,
    "def activity": todo_workflows.TodoInActivity,
}
ACTIVITIES = [todo_workflows.todo_activity, todo_workflows.todo_def_activity]

# Every state of the list, as the steps go: each turns in_progress, then done.
PROGRESSION = [
    ["todo", "todo", "todo"],
    ["in_progress", "todo", "todo"],
    ["done", "todo", "todo"],
    ["done", "in_progress", "todo"],
    ["done", "done", "todo"],
    ["done", "done", "in_progress"],
    ["done", "done", "done"],
]


async def run(temporal_address: str, nats_url: str, task_queue: str, where: str, fail: bool):
    """Run the todo workflow; return its outcome (result or failure) and its task events."""
    client = await plugged_client(temporal_address, nats_url)
    wid = unique(f"todo-{where.replace(' ', '-')}")
    workflow = WORKFLOWS[where]
    args = [fail, True] if where == "def activity" else [fail]
    async with running_worker(client, task_queue, [workflow], ACTIVITIES):
        try:
            outcome: Any = await client.execute_workflow(
                workflow.run, args=args, id=wid, task_queue=task_queue
            )
        except WorkflowFailureError as e:
            outcome = e
    return wid, outcome, await task_events(nats_url, workflow_exec_id=wid)


def statuses_after_each(events: list[StreamEvent]) -> list[list[str]]:
    """The item statuses a consumer holds after each event, parsed with Mistral's model."""
    states, seen = TaskStates(), []
    for event in events:
        task = states.apply(event)
        assert task is not None and task.task_type == "todo_list"
        parsed = mistral_shapes.TodoListState.model_validate(task.state)
        assert [i.title for i in parsed.items] == STEPS
        seen.append([i.status for i in parsed.items])
    return seen


def is_subsequence(part: list[Any], whole: list[Any]) -> bool:
    rest = iter(whole)
    return all(any(x == y for y in rest) for x in part)


@pytest.mark.parametrize("where", ["workflow", "activity", "def activity"])
async def test_items_turn_in_progress_then_done(temporal_address, nats_url, task_queue, where):
    """Each item's block turns it in_progress, then done; the list completes, and every
    event parses with the official client's models and every state with Mistral's."""
    wid, outcome, events = await run(temporal_address, nats_url, task_queue, where, fail=False)
    assert outcome == ["done"] * len(STEPS)
    seen = statuses_after_each(events)
    assert events[0].data.event_type == EventType.CUSTOM_TASK_STARTED
    assert events[-1].data.event_type == EventType.CUSTOM_TASK_COMPLETED
    assert seen[0] == PROGRESSION[0] and seen[-1] == PROGRESSION[-1]
    if where == "workflow":  # one event per update in workflow code
        assert seen[:-1] == PROGRESSION
    else:  # an activity may fold updates of one event-loop turn into one event
        assert is_subsequence(seen, [*PROGRESSION, PROGRESSION[-1]])
    official = await official_models(nats_url, workflow_exec_id=wid)
    todo = [e.data for e in official if e.data.event_type.startswith("CUSTOM_TASK")]
    assert [e.attributes.custom_task_type for e in todo] == ["todo_list"] * len(events)
    assert todo[0].attributes.payload.type == "json"
    assert {e.attributes.payload.type for e in todo[1:-1]} == {"json_patch"}


@pytest.mark.parametrize("where", ["workflow", "activity", "def activity"])
async def test_a_failed_item_stays_in_progress_and_fails_the_list(
    temporal_address, nats_url, task_queue, where
):
    """An exception in an item's block leaves that item in_progress (the steps before
    done, the ones after todo), ends the list CUSTOM_TASK_FAILED with the exception's
    type and message, and propagates: the workflow fails with it."""
    _, outcome, events = await run(temporal_address, nats_url, task_queue, where, fail=True)
    assert isinstance(outcome, WorkflowFailureError)
    cause = outcome.cause if where == "workflow" else outcome.cause.cause
    assert MESSAGE in str(cause)
    seen = statuses_after_each(events)
    assert seen[-1] == ["done", "in_progress", "todo"]
    assert STEPS.index(BROKEN) == 1
    last = events[-1].data
    assert last.event_type == EventType.CUSTOM_TASK_FAILED
    assert last.attributes.failure.message == f"BadPage: {MESSAGE}"


def test_an_item_outside_a_list_says_where_it_belongs():
    """Setting the status of an item in no list raises, naming how to add it."""
    item = TodoListItem(title="orphan", description="in no list")
    with pytest.raises(RuntimeError, match="add_item"):
        asyncio.run(item.set_status("done"))
    assert item.status == "todo"


async def test_a_list_in_workflow_code_replays_without_nats(temporal_address, nats_url, task_queue):
    """The history of a workflow that drove a list in its own code replays without a
    NATS server and without non-determinism."""
    client = await plugged_client(temporal_address, nats_url)
    wid = unique("todo-replay")
    async with running_worker(client, task_queue, [todo_workflows.TodoInWorkflow]):
        handle = await client.start_workflow(
            todo_workflows.TodoInWorkflow.run, False, id=wid, task_queue=task_queue
        )
        await handle.result()
    dead = MistralWorkflowsPlugin(nats_url=f"nats://127.0.0.1:{free_port()}")
    replayer = Replayer(workflows=[todo_workflows.TodoInWorkflow], plugins=[dead])
    replayed = await asyncio.wait_for(replayer.replay_workflow(await handle.fetch_history()), 30)
    assert replayed.replay_failure is None


async def test_misused_items_are_refused_with_what_to_do(temporal_address, nats_url, task_queue):
    """An item listed twice, an item of another list, a status Mistral does not have and
    `with item:` in async code are refused with a message saying what to do; the item
    keeps its status."""
    from mistral_workflows.conversational import TodoList
    from mistral_workflows.core.errors import ConfigurationError

    @workflows.activity(name="misuse")
    async def misuse() -> dict[str, str]:
        item, outcomes = TodoListItem(title="a", description="b"), {}
        try:
            TodoList(items=[item, item])
        except ValueError as e:
            outcomes["twice"] = f"ValueError: {e}"
        try:
            async with TodoList(items=[item]):
                await item.set_status("failed")  # type: ignore[arg-type]
        except ConfigurationError as e:
            outcomes["status"] = f"ConfigurationError: {e}"
        try:
            with item:  # on an event loop: `async with` is the form
                pass
        except RuntimeError as e:
            outcomes["with"] = str(e)
        try:
            TodoList(items=[item])  # it still belongs to the list above
        except RuntimeError as e:
            outcomes["other list"] = str(e)
        outcomes["kept"] = item.status
        return outcomes

    result, _ = await run_call(temporal_address, nats_url, task_queue, Call("misuse"), [misuse])
    assert result["twice"].startswith("ValueError: a TodoListItem appears twice")
    assert result["status"].startswith("ConfigurationError: todo item status must be one of")
    assert "already belongs to another TodoList" in result["other list"]
    assert result["with"].startswith("use `async with item:` on an event loop")
    assert result["kept"] == "todo"
