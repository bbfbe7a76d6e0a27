"""How the human view reads the well-known task states: Mistral's todo lists and working
tasks, and chat turns (text, thinking, tool calls). Pure functions of a state."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["chat_sections", "is_chat", "is_todo_list", "todo_lines", "tool_lines", "working_line"]

TODO_LIST = "todo_list"
WORKING = "working"
_MARKS = {"todo": "[ ]", "in_progress": "[~]", "done": "[x]"}
_STOPPED = "[!]"  # still in progress when its list ended: the step did not finish
_CLIP = 120


def clip(text: str, limit: int = _CLIP) -> str:
    """`text` on one line, cut to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def compact(value: Any) -> str:
    """A JSON value as short text (strings as themselves)."""
    if isinstance(value, str):
        return clip(value)
    return clip(orjson.dumps(value).decode())


def is_todo_list(task_type: str, state: Any) -> bool:
    return task_type == TODO_LIST and isinstance(state, dict) and _items(state) is not None


def _items(state: dict[str, Any]) -> list[dict[str, Any]] | None:
    items = state.get("items")
    if isinstance(items, list) and all(isinstance(i, dict) for i in items):
        return items
    return None


def todo_marks(state: Any, ended: bool) -> dict[str, str]:
    """Each item's id mapped to its checklist line."""
    lines: dict[str, str] = {}
    for n, item in enumerate(_items(state) or []):
        mark = _MARKS.get(str(item.get("status")), "[?]")
        if ended and item.get("status") == "in_progress":
            mark = _STOPPED
        title, description = item.get("title", ""), item.get("description", "")
        detail = f" - {clip(str(description))}" if description else ""
        lines[str(item.get("id", n))] = f"  {mark} {clip(str(title))}{detail}"
    return lines


def todo_lines(state: Any, ended: bool) -> list[str]:
    """The whole checklist, with a count of the steps done."""
    items = _items(state) or []
    done = sum(1 for i in items if i.get("status") == "done")
    return [f"todo_list {done}/{len(items)} done", *todo_marks(state, ended).values()]


def working_line(state: Any) -> str | None:
    """A working task on one line: what it does and its tool's state."""
    if not isinstance(state, dict) or not isinstance(state.get("title"), str):
        return None
    kind = state.get("type") or "tool"
    line = f"working [{kind}] {clip(state['title'])}"
    if state.get("content"):
        line += f": {clip(str(state['content']))}"
    tool = state.get("toolUIState")
    if isinstance(tool, dict):
        line += f" | {_tool_ui(tool)}"
    return line


def _tool_ui(tool: dict[str, Any]) -> str:
    kind = tool.get("type")
    result: dict[str, Any] = tool["result"] if isinstance(tool.get("result"), dict) else {}
    if kind == "generic_tool":
        call = f"{tool.get('name')}({compact(tool.get('arguments', {}))})"
        return _with_result(call, result, "value")
    if kind == "command":
        return _with_result(f"$ {clip(str(tool.get('command', '')))}", result, "output")
    if kind == "file":
        operations = tool.get("operations")
        ops = (
            [op for op in operations if isinstance(op, dict)]
            if isinstance(operations, list)
            else []
        )
        return ", ".join(f"{op.get('type')} {op.get('uri')}" for op in ops) or "file"
    return compact(tool)


def _with_result(call: str, result: dict[str, Any], value_key: str) -> str:
    status = result.get("status", "?")
    if status == "success" and value_key in result:
        return f"{call} success: {compact(result[value_key])}"
    if status == "failed":
        return f"{call} failed: {compact(result.get('error'))}"
    return f"{call} {status}"


_THINKING = ("reasoning", "thinking")


def is_chat(state: Any) -> bool:
    """A chat turn: `content` with tool calls, thinking or a finish reason beside it."""
    if not isinstance(state, dict):
        return False
    if isinstance(state.get("tool_calls"), list):
        return True
    return "content" in state and any(k in state for k in (*_THINKING, "finish_reason"))


def chat_sections(state: dict[str, Any]) -> list[tuple[str, str]]:
    """The turn's texts in the order they come: thinking, then content."""
    sections = []
    for key in _THINKING:
        if isinstance(state.get(key), str) and state[key]:
            sections.append(("thinking", str(state[key])))
            break
    if isinstance(state.get("content"), str) and state["content"]:
        sections.append(("", str(state["content"])))
    return sections


def tool_lines(state: dict[str, Any], ended: bool) -> dict[str, tuple[str, str]]:
    """Each tool call's key mapped to (what must change to show it again, its line), once
    it has a status or a result (or the turn ended). While the turn runs, arguments are
    left out of the first, so that arguments streaming in pieces are not shown piece by
    piece."""
    lines: dict[str, tuple[str, str]] = {}
    calls = state.get("tool_calls")
    for n, call in enumerate(calls if isinstance(calls, list) else []):
        if not isinstance(call, dict) or not (ended or "status" in call or "result" in call):
            continue
        fn = call["function"] if isinstance(call.get("function"), dict) else {}
        name = call.get("name") or fn.get("name") or "?"
        args = call.get("arguments", fn.get("arguments", ""))
        outcome = ""
        if "status" in call:
            outcome += f" {call['status']}"
        if "result" in call:
            outcome += f": {compact(call['result'])}"
        if call.get("error"):
            outcome += f": {compact(call['error'])}"
        line = f"tool {name}({compact(args)}){outcome}"
        lines[str(call.get("id") or n)] = (line if ended else f"{name}{outcome}", line)
    return lines
