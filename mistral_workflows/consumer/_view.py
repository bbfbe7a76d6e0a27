"""The human view of a stream: token text as it arrives, progress bars, one-line status."""

from __future__ import annotations

import time
from typing import Any, TextIO

import orjson

from mistral_workflows.consumer import _shapes
from mistral_workflows.consumer._reducer import TaskState, TaskStates
from mistral_workflows.core.events import (
    ACTIVITY_EVENT_TYPES,
    CUSTOM_TASK_EVENT_TYPES,
    StreamEvent,
)

__all__ = ["HumanView"]

_BAR = 20


class HumanView:
    """Writes a readable, line-oriented account of events to `out`.

    Text-like tasks (a `text` string or a `tokens` list in their state) are shown as the
    text itself, continued in place while the same task keeps streaming; progress-like
    tasks (`progress_idx` and `progress_total`) as a bar; a `todo_list` as a checklist
    (then each step whose status changes); a `working` task as one line with its tool's
    state; a chat turn (`content` with `tool_calls`, `reasoning` or `finish_reason`) as
    its thinking and text streamed in place and a line per tool call; everything else as
    one line.
    """

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._states = TaskStates()
        self._shown: dict[str, int] = {}
        self._streaming: str | None = None
        self._lines: dict[str, dict[str, str]] = {}  # per task: the lines already shown
        self._calls: dict[str, dict[str, tuple[str, str]]] = {}  # per turn: its tool calls

    def show(self, event: StreamEvent) -> None:
        """Render one event."""
        task = self._states.apply(event)
        if task is None:
            if event.data.event_type not in CUSTOM_TASK_EVENT_TYPES:
                self._line(event, _lifecycle(event))
            return
        if self._special(event, task):
            return
        text = _text(task.state)
        if text is not None and task.status == "running":
            self._stream_text(event, task.task_id, task.task_type, text)
        elif (bar := _bar(task.state)) is not None and task.status == "running":
            self._line(event, f"{task.task_type} {bar}")
        else:
            if event.metadata.get("snapshot") and task.task_id not in self._shown:
                # A late joiner meets a finished task here: show what the live view showed.
                self._line(event, _content(task, text))
                self._shown[task.task_id] = len(text or "")
            self._line(event, _status(task, event))

    def _special(self, event: StreamEvent, task: TaskState) -> bool:
        """Show the well-known shapes; False for any other task."""
        ended = task.status != "running"
        if _shapes.is_todo_list(task.task_type, task.state):
            self._todo(event, task, ended)
        elif task.task_type == _shapes.WORKING and (line := _shapes.working_line(task.state)):
            self._changed(event, task, {"": line}, prefix="")
            if ended:
                self._line(event, _status(task, event))
        elif _shapes.is_chat(task.state):
            self._chat(event, task, ended)
        else:
            return False
        return True

    def _todo(self, event: StreamEvent, task: TaskState, ended: bool) -> None:
        if task.task_id not in self._lines or ended:
            lines = _shapes.todo_lines(task.state, ended)
            if ended:
                self._line(event, _status(task, event))
            self._line(event, lines[0])
            for line in lines[1:]:
                self._out.write(line + "\n")
            self._lines[task.task_id] = _shapes.todo_marks(task.state, ended)
            return
        self._changed(event, task, _shapes.todo_marks(task.state, ended), prefix="todo_list")

    def _chat(self, event: StreamEvent, task: TaskState, ended: bool) -> None:
        for label, text in _shapes.chat_sections(task.state):
            name = f"{task.task_type} {label}".strip()
            self._stream_text(event, f"{task.task_id} {label}", name, text)
        shown = self._calls.setdefault(task.task_id, {})
        for key, (stamp, line) in _shapes.tool_lines(task.state, ended).items():
            before = shown.get(key)
            if before is None or (line != before[1] if ended else stamp != before[0]):
                self._line(event, f"{task.task_type} {line}")
                shown[key] = (stamp, line)  # what was last printed, to compare with
        if ended:
            self._line(event, _status(task, event))

    def _changed(
        self, event: StreamEvent, task: TaskState, lines: dict[str, str], prefix: str
    ) -> None:
        """Write the lines that differ from what this task showed before."""
        shown = self._lines.setdefault(task.task_id, {})
        for key, line in lines.items():
            if shown.get(key) != line:
                self._line(event, f"{prefix} {line.strip()}".strip())
        self._lines[task.task_id] = {**shown, **lines}

    def _stream_text(self, event: StreamEvent, key: str, name: str, text: str) -> None:
        shown = self._shown.get(key, 0)
        if self._streaming != key:
            if shown == len(text) and shown:
                return  # Nothing new since this text was last shown.
            self._line(event, f"{name}: ", end="")
            self._out.write(text[:shown])
            self._streaming = key
        self._out.write(text[shown:])
        self._out.flush()
        self._shown[key] = len(text)

    def _line(self, event: StreamEvent, message: str, end: str = "\n") -> None:
        if self._streaming is not None:
            self._out.write("\n")
            self._streaming = None
        ns = event.data.event_timestamp
        clock = time.strftime("%H:%M:%S", time.gmtime(ns // 1_000_000_000))
        millis = (ns // 1_000_000) % 1000
        where = _short(event.data.workflow_exec_id)
        # A snapshot (late join) has no broker sequence of its own.
        seq = "snapshot" if event.broker_sequence is None else f"#{event.broker_sequence}"
        self._out.write(f"{clock}.{millis:03d} {seq} {where} {message}{end}")
        self._out.flush()


def _short(exec_id: str) -> str:
    return exec_id if len(exec_id) <= 24 else exec_id[:21] + "..."


def _text(state: Any) -> str | None:
    if not isinstance(state, dict):
        return None
    if isinstance(state.get("text"), str):
        return str(state["text"])
    tokens = state.get("tokens")
    if isinstance(tokens, list) and all(isinstance(t, str) for t in tokens):
        return "".join(tokens)
    return None


def _bar(state: Any) -> str | None:
    if not isinstance(state, dict):
        return None
    done, total = state.get("progress_idx"), state.get("progress_total")
    if not isinstance(done, int) or not isinstance(total, int) or total <= 0:
        return None
    filled = _BAR * min(done, total) // total
    return f"[{'#' * filled}{'.' * (_BAR - filled)}] {done}/{total}"


def _content(task: TaskState, text: str | None) -> str:
    if text is not None:
        return f"{task.task_type}: {text}"
    if (bar := _bar(task.state)) is not None:
        return f"{task.task_type} {bar}"
    return _state_line(task)


def _state_line(task: TaskState) -> str:
    shown = orjson.dumps(task.state).decode()
    return f"{task.task_type} = {shown if len(shown) <= 120 else shown[:117] + '...'}"


def _status(task: TaskState, event: StreamEvent) -> str:
    kind = event.data.event_type.removeprefix("CUSTOM_TASK_").lower()
    if task.failure:
        return f"{task.task_type} {kind}: {task.failure}"
    if kind == "in_progress":
        return _state_line(task)
    return f"{task.task_type} {kind}"


def _lifecycle(event: StreamEvent) -> str:
    data = event.data
    attrs = data.attributes
    kind = data.event_type
    if kind in ACTIVITY_EVENT_TYPES:
        name = getattr(attrs, "activity_name", "")
        attempt = event.activity_context.attempt if event.activity_context else 1
        detail = (
            f"activity {name!r} attempt {attempt} {kind.removeprefix('ACTIVITY_TASK_').lower()}"
        )
    else:
        detail = f"workflow {data.workflow_name} {kind.removeprefix('WORKFLOW_').lower()}"
    failure = getattr(attrs, "failure", None)
    return f"{detail}: {failure.message}" if failure is not None else detail
