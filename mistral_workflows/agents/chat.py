"""Streaming an OpenAI-compatible chat completion into a `chat_turn` task.

    stream = await client.chat.completions.create(..., stream=True)
    turn = await stream_chat_completion("chat_turn", stream)

Chunks are read duck-typed: the `openai` client's `ChatCompletionChunk`, the `mistralai`
client's `CompletionEvent` (its `data`), or plain dicts in the wire format, so no client
library is imported here.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping
from typing import TYPE_CHECKING, Any

from mistral_workflows.agents.state import ChatTurnState, initial_turn

if TYPE_CHECKING:
    from mistral_workflows.core.task import Task

__all__ = ["ChatTurnBuilder", "stream_chat_completion"]

_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


async def stream_chat_completion(
    task: Task[Any] | str, stream: AsyncIterable[Any], *, model: str | None = None
) -> ChatTurnState:
    """Stream a chat completion into a task; return the assembled response.

    Args:
        task: A task type (a `Task` of that type is opened and closed around the stream),
            or a `Task` already entered, whose state gets the `chat_turn` keys.
        stream: The async chunk stream, e.g. `await client.chat.completions.create(...,
            stream=True)` (openai) or `await client.chat.stream_async(...)` (mistralai).
        model: The model name to show before the first chunk names it.

    Raises:
        TypeError: `stream` is not an async iterable of chunks.
        ValueError: a chunk carries a choice other than the first (ask for `n=1`).
    """
    if not hasattr(stream, "__aiter__"):
        raise TypeError(
            f"stream_chat_completion needs an async chunk stream, got {type(stream).__name__}: "
            "pass `await client.chat.completions.create(..., stream=True)` or "
            "`await client.chat.stream_async(...)`"
        )
    if isinstance(task, str):
        from mistral_workflows.core.task import Task

        async with Task(type=task, state=initial_turn(model)) as opened:
            return await _pump(opened, stream)
    await task.update_state(initial_turn(model))
    return await _pump(task, stream)


async def _pump(task: Task[Any], stream: AsyncIterable[Any]) -> ChatTurnState:
    builder = ChatTurnBuilder(initial_turn(task.state.get("model")))
    async for chunk in stream:
        updates = builder.feed(chunk)
        if updates:
            await task.update_state(updates)
    return ChatTurnState.model_validate(builder.state)


class ChatTurnBuilder:
    """Folds chat-completion chunks into a `chat_turn` state (a dict of JSON values).

    `feed` returns the top-level keys the chunk changed, with their new values.
    """

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.state: dict[str, Any] = state if state is not None else initial_turn()

    def feed(self, chunk: Any) -> dict[str, Any]:
        """Apply one chunk; return what changed."""
        data = _as_dict(chunk)
        changed: dict[str, Any] = {}
        if data.get("model") and self.state["model"] != data["model"]:
            changed["model"] = data["model"]
        for choice in data.get("choices") or ():
            if choice.get("index", 0) != 0:
                raise ValueError(
                    f"the chat stream has a choice with index {choice.get('index')}: "
                    "stream_chat_completion follows one choice, ask for n=1"
                )
            self._choice(choice, changed)
        if usage := data.get("usage"):
            changed["usage"] = {
                key: usage.get(key)
                for key in ("prompt_tokens", "completion_tokens", "total_tokens")
            }
        self.state.update(changed)
        return changed

    def _choice(self, choice: Mapping[str, Any], changed: dict[str, Any]) -> None:
        delta = choice.get("delta") or {}
        text, thinking = _content_parts(delta.get("content"))
        thinking += delta.get("reasoning_content") or delta.get("reasoning") or ""
        if text:
            changed["content"] = self.state["content"] + text
        if thinking:
            changed["thinking"] = self.state["thinking"] + thinking
        if delta.get("tool_calls"):
            changed["tool_calls"] = self._tool_calls(delta["tool_calls"])
        if choice.get("finish_reason"):
            changed["finish_reason"] = choice["finish_reason"]

    def _tool_calls(self, deltas: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = [dict(call) for call in self.state["tool_calls"]]
        for position, delta in enumerate(deltas):
            index = delta.get("index")
            index = position if index is None else index
            call = next((c for c in calls if c["index"] == index), None)
            if call is None:
                call = {"index": index, "toolCallId": None, "name": "", "arguments": ""}
                call["result"] = {"status": "pending"}
                calls.append(call)
                calls.sort(key=lambda c: int(c["index"]))
            if delta.get("id") and call["toolCallId"] is None:  # Mistral repeats "null" after
                call["toolCallId"] = delta["id"]
            function = delta.get("function") or {}
            call["name"] += function.get("name") or ""
            call["arguments"] += _arguments_text(function.get("arguments"))
        return calls


def _as_dict(chunk: Any) -> dict[str, Any]:
    """A chunk as a dict: from a dict, or a pydantic model (the `data` of Mistral's event)."""
    if hasattr(chunk, "model_dump"):
        chunk = chunk.model_dump(mode="json", by_alias=True)
    if not isinstance(chunk, Mapping):
        raise TypeError(
            f"a chat stream chunk must be a dict or a pydantic model, got {type(chunk).__name__}"
        )
    if "choices" not in chunk and isinstance(chunk.get("data"), Mapping):
        chunk = chunk["data"]
    return dict(chunk)


def _content_parts(content: Any) -> tuple[str, str]:
    """(text, thinking) of a delta's content: a string, or a list of typed chunks
    (Mistral's `text` and `thinking` chunks)."""
    if content is None or isinstance(content, str):
        return content or "", ""
    text, thinking = "", ""
    for part in content:
        if part.get("type") == "thinking":
            thinking += "".join(_content_parts(part.get("thinking"))[0:1])
        elif isinstance(part.get("text"), str):
            text += part["text"]
    return text, thinking


def _arguments_text(arguments: Any) -> str:
    """A tool-call arguments fragment as text (Mistral may send a whole object)."""
    if arguments is None or isinstance(arguments, str):
        return arguments or ""
    import orjson

    return orjson.dumps(arguments).decode()
