"""Every way out of a Task block publishes exactly one terminal event, after every change
that was accepted; and what cannot be sent is refused with a path, never a bare TypeError."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

import pytest

import mistral_workflows as workflows
from mistral_workflows import (
    ConfigurationError,
    InvalidStateError,
    MistralWorkflowsError,
    StreamEvent,
)
from mistral_workflows.core.events import EventType
from mistral_workflows.core.json_value import MAX_DEPTH
from mistral_workflows.core.task import Task
from tests.support import (
    rebuilt,
    run_call,
    types,
)
from tests.workflows import Call

TERMINAL = {
    EventType.CUSTOM_TASK_COMPLETED,
    EventType.CUSTOM_TASK_FAILED,
    EventType.CUSTOM_TASK_CANCELED,
    EventType.CUSTOM_TASK_TIMED_OUT,
}
# What the state can be changed to in place that cannot be sent, and what the error says.
BAD = {
    "set": ({1, 2}, "has type set"),
    "inf": (math.inf, "inf, which is not valid JSON"),
    "surrogate": ("a\ud800", "lone surrogate '\\ud800'"),
    "big int": (2**64, "integer outside the 64-bit range"),
    "too large": ("x" * (2 * 1024 * 1024), "event limit"),
}
# The state once every accepted update is in: the last one is folded, not sent, at exit.
ACCEPTED = {"n": 2, "items": ["a", "b"]}


def nested(levels: int) -> list[Any]:
    """A list `levels` containers deep."""
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


async def accept_updates(task: Task[Any]) -> bool:
    """Make the updates of ACCEPTED; return whether the last one is still folded, unsent."""
    await task.update_state({"n": 1})
    await asyncio.sleep(0)  # a new loop turn: the next update goes out at once
    await task.update_state({"n": 2, "items": ["a"]})
    await task.update_state({"items": ["a", "b"]})  # same turn: folded into the next event
    return bool(task._writer._folded)


@workflows.activity()
async def leaves_bad_state(kind: str, catch: bool) -> dict[str, Any]:
    """Change the state in place to BAD[kind] and leave the block normally."""
    folded = False
    try:
        async with Task(type="bad-in-place", state={"n": 0, "items": []}) as task:
            folded = await accept_updates(task)
            task.state["bad"] = BAD[kind][0]
    except MistralWorkflowsError as e:
        if not catch:
            raise
        return {"caught": f"{type(e).__name__}: {e}", "folded": folded}
    return {"caught": None, "folded": folded}


@workflows.activity()
async def raises_after_bad_state(kind: str) -> str:
    """Change the state in place to BAD[kind], then leave the block by an exception."""
    async with Task(type="bad-then-raise", state={"n": 0, "items": []}) as task:
        await accept_updates(task)
        task.state["bad"] = BAD[kind][0]
        raise ValueError("model quota exceeded \ud800")


@workflows.activity()
async def deep_updates() -> list[str]:
    """Updates nested up to the limit are taken; one level more is refused at once."""
    refused = []
    async with Task(type="deep", state={}) as task:
        await task.update_state({"ok": nested(MAX_DEPTH - 1)})  # the root is a level too
        for update in ({"deep": nested(MAX_DEPTH)}, {"ok": nested(MAX_DEPTH)}):
            try:
                await task.update_state(update)
            except InvalidStateError as e:
                refused.append(str(e))
    return refused


@workflows.activity()
async def never_leaves() -> str:
    """Enter a Task and return without leaving its block: no terminal event."""
    task = Task(type="never-ends", state={"n": 0})
    await task.__aenter__()
    await task.update_state({"n": 1})
    return "left without ending the task"


@workflows.activity()
async def unsendable_values() -> list[str]:
    """Big ints and lone surrogates, through every way in, are refused naming the path."""
    refused = []
    updates: list[dict[str, Any]] = [
        {"n": 2**64},  # an int replacing an int: the top-level fast path
        {"n": -(2**63) - 1},
        {"text": "ab\ud800"},  # a str append: the fast path
        {"text": "\udc00"},  # a str replace
        {"items": ["\ud800"]},
        {"\ud800": 1},
        {"items": [{"k\udfff": 1}]},
    ]
    async with Task(type="json-limits", state={"n": 0, "text": "ab", "items": []}) as task:
        for update in updates:
            try:
                await task.update_state(update)
            except InvalidStateError as e:
                refused.append(str(e))
        try:
            await task.set_state({"n": 2**70, "text": "ab", "items": []})
        except InvalidStateError as e:
            refused.append(str(e))
        await task.update_state({"n": 2**64 - 1, "text": "abc"})
    try:
        Task(type="json-limits", state={"a": [-(2**64)]})
    except InvalidStateError as e:
        refused.append(str(e))
    try:
        Task(type="json-limits", id="id\udfff")
    except ConfigurationError as e:
        refused.append(str(e))
    return refused


ACTIVITIES = [
    leaves_bad_state,
    raises_after_bad_state,
    deep_updates,
    never_leaves,
    unsendable_values,
]


async def run(temporal_address: str, nats_url: str, task_queue: str, call: Call) -> tuple:
    return await run_call(temporal_address, nats_url, task_queue, call, ACTIVITIES)


def assert_ends_once(events: Sequence[StreamEvent], state: dict[str, Any], status: str) -> None:
    """The task's events end with its one terminal event, and rebuild `state`."""
    ends = [t for t in types(events) if t in TERMINAL]
    assert len(ends) == 1, f"expected one terminal event, got {types(events)}"
    assert types(events)[-1] in TERMINAL
    (task,) = rebuilt(events)
    assert task.status == status and task.state == state


@pytest.mark.parametrize("catch", [True, False], ids=["caught", "not caught"])
@pytest.mark.parametrize("kind", list(BAD))
async def test_unsendable_state_at_exit_ends_the_task_as_failed(
    temporal_address, nats_url, task_queue, kind, catch
):
    """Leaving a block whose state was changed in place to something that cannot be sent
    sends every accepted update, then one FAILED naming the problem, and raises."""
    call = Call("leaves_bad_state", [kind, catch])
    result, events = await run(temporal_address, nats_url, task_queue, call)
    expected = BAD[kind][1]
    error = result["caught"] if catch else result["failed"]
    assert expected in error and "changed in place" in error and "'/bad'" in error
    if catch:
        assert result["folded"]  # the last accepted update was waiting at exit
    assert_ends_once(events, ACCEPTED, "failed")
    message = events[-1].data.attributes.failure.message
    assert expected in message and "'/bad'" in message


async def test_exception_after_unsendable_state_ends_the_task(
    temporal_address, nats_url, task_queue
):
    """Left by an exception, a block whose state cannot be sent ends with FAILED for that
    exception (its lone surrogate escaped), after every accepted update."""
    call = Call("raises_after_bad_state", ["set"])
    result, events = await run(temporal_address, nats_url, task_queue, call)
    assert "failed" in result  # Temporal's own message cannot hold the surrogate either
    assert_ends_once(events, ACCEPTED, "failed")
    message = events[-1].data.attributes.failure.message
    assert message == "ValueError: model quota exceeded \\ud800"


async def test_too_deep_update_is_refused_at_update_state(temporal_address, nats_url, task_queue):
    """Nesting is counted from the root in update_state as at exit: one level too deep is
    refused at once, naming the path, and the task completes with what was taken."""
    refused, events = await run(temporal_address, nats_url, task_queue, Call("deep_updates"))
    assert len(refused) == 2
    assert all(f"nested deeper than {MAX_DEPTH} levels" in m for m in refused)
    assert "task state at '/deep/0/0" in refused[0] and "task state at '/ok/0/0" in refused[1]
    assert_ends_once(events, {"ok": nested(MAX_DEPTH - 1)}, "completed")


async def test_a_missing_terminal_event_is_seen(temporal_address, nats_url, task_queue):
    """Negative control: a task whose block is never left has no terminal event, and the
    check of the tests above says so."""
    _, events = await run(temporal_address, nats_url, task_queue, Call("never_leaves"))
    assert types(events)[0] == EventType.CUSTOM_TASK_STARTED
    with pytest.raises(AssertionError, match="expected one terminal event"):
        assert_ends_once(events, {"n": 1}, "running")


async def test_unsendable_values_are_refused_with_their_path(
    temporal_address, nats_url, task_queue
):
    """Big ints and lone surrogates in keys or values raise InvalidStateError naming the
    path, from update_state, set_state and Task(state=...) (in a custom task id: a
    ConfigurationError); the task goes on."""
    refused, events = await run(temporal_address, nats_url, task_queue, Call("unsendable_values"))
    where = ["'/n'", "'/n'", "'/text'", "'/text'", "'/items/0'", "'' (the root)", "'/items/0'"]
    where += ["'/n'", "'/a/0'"]
    *refused, bad_id = refused
    assert [m.split(" has ")[0] for m in refused] == [f"task state at {w}" for w in where]
    assert "Task id must be a non-empty str without lone surrogates, not 'id\\udfff'" in bad_id
    assert sum("64-bit range" in m for m in refused) == 4
    assert sum("lone surrogate" in m for m in refused) == 5
    state = {"n": 2**64 - 1, "text": "abc", "items": []}
    assert_ends_once(events, state, "completed")
