"""TaskStates: state rebuilt in task order, despite repeats, early events and retries."""

from __future__ import annotations

from typing import Any

from mistral_workflows import StreamEvent, TaskStates
from mistral_workflows.core.envelope import envelope
from mistral_workflows.core.events import EventType

ORIGIN = {
    "workflow_name": "w",
    "workflow_exec_id": "x",
    "root_workflow_exec_id": "x",
    "parent_workflow_exec_id": None,
    "workflow_run_id": "r",
}


def event(kind: EventType, seq: int | None, attempt: int = 1, **attributes: Any) -> StreamEvent:
    attrs = {"custom_task_id": "t", "custom_task_type": "s", **attributes}
    if seq is not None:
        attrs["task_sequence"] = seq
    body = envelope(
        stream="s",
        event_type=kind,
        event_id=f"t:{attempt}:{seq}",
        attributes=attrs,
        origin=ORIGIN,
        workflow_context={"namespace": "n", "workflow_name": "w", "workflow_exec_id": "x"},
        activity_context={"activity_id": "1", "activity_name": "a", "attempt": attempt},
    )
    return StreamEvent.model_validate(body)


def started(state: Any, attempt: int = 1) -> StreamEvent:
    return event(
        EventType.CUSTOM_TASK_STARTED, 0, attempt, payload={"type": "json", "value": state}
    )


def patch(seq: int, *ops: dict[str, Any], attempt: int = 1) -> StreamEvent:
    return event(
        EventType.CUSTOM_TASK_IN_PROGRESS,
        seq,
        attempt,
        payload={"type": "json_patch", "value": list(ops)},
    )


def add(path: str, value: Any) -> dict[str, Any]:
    return {"op": "add", "path": path, "value": value}


def feed(*events: StreamEvent) -> TaskStates:
    states = TaskStates()
    for e in events:
        states.apply(e)
    return states


def test_patches_apply_in_order():
    """STARTED then patches give the current state."""
    states = feed(started({"xs": []}), patch(1, add("/xs/0", "a")), patch(2, add("/xs/1", "b")))
    assert states["t"].state == {"xs": ["a", "b"]} and states["t"].sequence == 2


def test_repeated_event_is_ignored():
    """A repeated patch is applied once."""
    states = feed(started({"xs": []}), patch(1, add("/xs/-", "a")), patch(1, add("/xs/-", "a")))
    assert states["t"].state == {"xs": ["a"]}


def test_negative_control_repeats_change_state_without_sequences():
    """Without task sequences, the same repeat is applied twice: the check above matters."""
    bare = event(
        EventType.CUSTOM_TASK_IN_PROGRESS,
        None,
        payload={"type": "json_patch", "value": [add("/xs/-", "a")]},
    )
    states = feed(started({"xs": []}), bare, bare)
    assert states["t"].state == {"xs": ["a", "a"]}


def test_early_event_waits_for_the_missing_one():
    """A patch that arrives before its predecessor is held, then applied in order."""
    states = TaskStates()
    states.apply(started({"xs": []}))
    assert states.apply(patch(2, add("/xs/1", "b"))) is None
    assert states["t"].state == {"xs": []}
    states.apply(patch(1, add("/xs/0", "a")))
    assert states["t"].state == {"xs": ["a", "b"]}


def test_newer_attempt_replaces_older_state():
    """When attempt 2 starts, attempt 1's partial state is dropped, and its late events too."""
    states = feed(
        started({"xs": []}),
        patch(1, add("/xs/0", "partial")),
        started({"xs": []}, attempt=2),
        patch(2, add("/xs/1", "late"), attempt=1),
        patch(1, add("/xs/0", "final"), attempt=2),
    )
    task = states["t"]
    assert (task.attempt, task.state) == (2, {"xs": ["final"]})


def test_terminal_events_set_status():
    """COMPLETED carries the final state; FAILED carries the message."""
    done = feed(
        started({}),
        event(EventType.CUSTOM_TASK_COMPLETED, 1, payload={"type": "json", "value": {"a": 1}}),
    )
    assert (done["t"].status, done["t"].state) == ("completed", {"a": 1})
    failed = feed(started({}), event(EventType.CUSTOM_TASK_FAILED, 1, failure={"message": "boom"}))
    assert (failed["t"].status, failed["t"].failure) == ("failed", "boom")


def test_patches_do_not_mutate_the_events():
    """Later patches never change a value held by an earlier event."""
    first = started({"xs": []})
    feed(first, patch(1, add("/xs/0", "a")))
    assert first.data.attributes.payload.value == {"xs": []}
