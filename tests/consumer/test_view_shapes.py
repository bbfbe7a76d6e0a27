"""The human view of todo lists, working tasks and chat turns (snapshot)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mistral_workflows.consumer import HumanView
from mistral_workflows.core.events import EventType
from tests.consumer.test_view import Script, json_value, patch

SNAPSHOT = Path(__file__).parent / "snapshots" / "agent_view.txt"
ITEMS = [
    {"id": "i1", "status": "todo", "title": "Plan", "description": "Read the question"},
    {"id": "i2", "status": "todo", "title": "Look up", "description": "Call the tools"},
    {"id": "i3", "status": "todo", "title": "Answer", "description": ""},
]
STARTED, PROGRESS = EventType.CUSTOM_TASK_STARTED, EventType.CUSTOM_TASK_IN_PROGRESS
COMPLETED, FAILED = EventType.CUSTOM_TASK_COMPLETED, EventType.CUSTOM_TASK_FAILED


def status(item: int, value: str) -> dict[str, Any]:
    return patch({"op": "replace", "path": f"/items/{item}/status", "value": value})


def working(s: Script, task_id: str, states: list[dict[str, Any]]) -> None:
    """A working task of its own id that goes through `states`, then completes."""
    for n, state in enumerate(states):
        kind = STARTED if n == 0 else PROGRESS
        s.add(kind, "working", {"custom_task_id": task_id, "task_sequence": n, **json_value(state)})
    end = {"custom_task_id": task_id, "task_sequence": len(states), **json_value(states[-1])}
    s.add(COMPLETED, "working", end)


def generic(result: dict[str, Any]) -> dict[str, Any]:
    tool = {"type": "generic_tool", "toolCallId": "tc-1", "name": "search"}
    tool |= {"arguments": {"query": "tides"}, "result": result}
    return {"type": "tool", "title": "Searching", "content": "tides", "toolUIState": tool}


def command(result: dict[str, Any]) -> dict[str, Any]:
    tool = {"type": "command", "toolCallId": "tc-2", "command": "pytest -q", "result": result}
    return {"type": "tool", "title": "Running tests", "content": "", "toolUIState": tool}


FILE_STATE = {
    "type": "tool",
    "title": "Editing",
    "content": "two files",
    "toolUIState": {
        "type": "file",
        "toolCallId": "tc-3",
        "operations": [
            {"type": "create", "uri": "file:///w/new.py", "content": "print(1)"},
            {"type": "delete", "uri": "file:///w/old.py"},
        ],
    },
}
THINKING_STATE = {"type": "thinking", "title": "Thinking", "content": "Which tool fits?"}


FINAL_TURN = {
    "content": "Let me check.",
    "reasoning": "Two tools are needed.",
    "tool_calls": [
        {"id": "c1", "name": "search", "arguments": '{"q": "tides"}', "status": "success"}
        | {"result": {"high": "18:04"}},
        {"id": "c2", "name": "fetch", "arguments": "{}", "status": "failed", "error": "timeout"},
        {"id": "c3", "name": "calc", "arguments": '{"x": 1}', "status": "streaming"},
    ],
    "finish_reason": "tool_calls",
}


def chat_turn(s: Script) -> None:
    empty = {"content": "", "reasoning": "", "tool_calls": [], "finish_reason": None}
    s.add(STARTED, "assistant", json_value(empty))
    for piece in ["Two tools", " are needed."]:
        s.add(PROGRESS, "assistant", patch({"op": "append", "path": "/reasoning", "value": piece}))
    for piece in ["Let me", " check."]:
        s.add(PROGRESS, "assistant", patch({"op": "append", "path": "/content", "value": piece}))
    call = {"id": "c1", "name": "search", "arguments": '{"q":'}
    s.add(PROGRESS, "assistant", patch({"op": "add", "path": "/tool_calls/0", "value": call}))
    s.add(
        PROGRESS,
        "assistant",
        patch({"op": "append", "path": "/tool_calls/0/arguments", "value": ' "tides"}'}),
    )
    s.add(
        PROGRESS,
        "assistant",
        patch({"op": "add", "path": "/tool_calls/0/status", "value": "running"}),
    )
    second = {"id": "c2", "name": "fetch", "arguments": "{}", "status": "running"}
    s.add(PROGRESS, "assistant", patch({"op": "add", "path": "/tool_calls/1", "value": second}))
    s.add(
        PROGRESS,
        "assistant",
        patch(
            {"op": "replace", "path": "/tool_calls/0/status", "value": "success"},
            {"op": "add", "path": "/tool_calls/0/result", "value": {"high": "18:04"}},
            {"op": "replace", "path": "/tool_calls/1/status", "value": "failed"},
            {"op": "add", "path": "/tool_calls/1/error", "value": "timeout"},
        ),
    )
    third = {"id": "c3", "name": "calc", "arguments": "{", "status": "streaming"}
    s.add(PROGRESS, "assistant", patch({"op": "add", "path": "/tool_calls/2", "value": third}))
    for piece in ['"x"', ": 1}"]:
        path = "/tool_calls/2/arguments"
        s.add(PROGRESS, "assistant", patch({"op": "append", "path": path, "value": piece}))
    s.add(
        PROGRESS,
        "assistant",
        patch({"op": "replace", "path": "/finish_reason", "value": "tool_calls"}),
    )
    s.add(COMPLETED, "assistant", json_value(FINAL_TURN))


def scripted_events() -> list[Any]:
    s = Script()
    s.add(STARTED, "todo_list", json_value({"items": ITEMS}))
    s.add(PROGRESS, "todo_list", status(0, "in_progress"))
    s.add(PROGRESS, "todo_list", status(0, "done"))
    s.add(PROGRESS, "todo_list", status(1, "in_progress"))
    working(s, "w1", [generic({"status": "pending"}), generic({"status": "running"})])
    working(s, "w2", [generic({"status": "success", "value": {"high": "18:04"}})])
    working(
        s,
        "w3",
        [command({"status": "running"}), command({"status": "failed", "error": "2 failed"})],
    )
    working(s, "w4", [FILE_STATE, THINKING_STATE])
    chat_turn(s)
    s.add(FAILED, "todo_list", {"failure": {"message": "BadPage: the page is not HTML"}})
    return s.events


def render() -> str:
    out = io.StringIO()
    view = HumanView(out)
    for event in scripted_events():
        view.show(event)
    return out.getvalue()


def test_agent_view_matches_snapshot():
    """Todo lists, working tasks and a chat turn render exactly as the recorded snapshot.

    After an intended change of the view, rewrite the snapshot with `render()` and review it.
    """
    assert render() == SNAPSHOT.read_text()


def test_agent_view_shows_checklist_tool_states_and_tool_calls():
    """The checklist marks done, running and stopped steps; tool states show their
    result; a chat turn shows its thinking, its text and each tool call's outcome."""
    text = render()
    assert "  [x] Plan - Read the question\n  [!] Look up - Call the tools\n  [ ] Answer\n" in text
    assert 'search({"query":"tides"}) running' in text
    assert "$ pytest -q failed: 2 failed" in text
    assert "create file:///w/new.py, delete file:///w/old.py" in text
    assert "assistant thinking: Two tools are needed." in text
    assert "assistant: Let me check." in text
    assert 'assistant tool search({"q": "tides"}) success: {"high":"18:04"}' in text
    assert "assistant tool fetch({}) failed: timeout" in text
    # Arguments streaming in pieces: shown once as the call appears, once whole at the end.
    assert text.count("assistant tool calc(") == 2
    assert 'assistant tool calc({"x": 1}) streaming\n' in text


_WORDS = [
    "items", "status", "title", "description", "id", "type", "content", "toolUIState",
    "result", "value", "error", "operations", "uri", "command", "name", "arguments",
    "tool_calls", "reasoning", "thinking", "finish_reason", "function", "output",
]  # fmt: skip
_SCALAR = st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from([*_WORDS, "done"])
SHAPED = st.recursive(
    _SCALAR,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(_WORDS), kids, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["todo_list", "working", "assistant"]), SHAPED, SHAPED)
def test_the_view_draws_any_state_without_failing(task_type, first, last):
    """Whatever a task of these types holds (its fields missing, of other types, nested
    oddly), the view draws its start and its end without raising."""
    s = Script()
    s.add(STARTED, task_type, json_value(first if isinstance(first, dict) else {"x": first}))
    s.add(COMPLETED, task_type, json_value(last if isinstance(last, dict) else {"x": last}))
    view = HumanView(io.StringIO())
    for event in s.events:
        view.show(event)
