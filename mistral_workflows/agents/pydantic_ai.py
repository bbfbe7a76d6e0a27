"""pydantic-ai: an event stream handler that streams an agent run into tasks.

    agent = Agent(model, event_stream_handler=TaskEventStreamHandler())

Each model response becomes a `chat_turn` task (`ChatTurnState`) and each tool call a
`working` task (`WorkingState`). Under pydantic-ai's `TemporalAgent` the handler runs in
the model-request activity (the response streams live, with the workflow's ids; a retried
attempt replaces the failed one like any retried activity) and in the event-handler
activities of the tool events.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

try:
    from pydantic_ai import messages as _messages
except ModuleNotFoundError as e:  # pragma: no cover - exercised in a subprocess by the tests
    if (e.name or "").partition(".")[0] != "pydantic_ai":
        raise  # installed, but something it needs is missing: its own error says what
    raise ImportError(
        "mistral_workflows.agents.pydantic_ai needs pydantic-ai: "
        "pip install 'mistral-workflows[pydantic-ai]'"
    ) from e
from pydantic_core import to_jsonable_python

from mistral_workflows.agents.state import CHAT_TURN_TYPE, WORKING_TYPE, initial_turn
from mistral_workflows.core.task import Task

__all__ = ["TaskEventStreamHandler"]

_RESPONSE_EVENTS = (
    _messages.PartStartEvent,
    _messages.PartDeltaEvent,
    _messages.PartEndEvent,
    _messages.FinalResultEvent,
)
_KNOWN_CALLS = 1024


class TaskEventStreamHandler:
    """A pydantic-ai `event_stream_handler` that streams the run into tasks.

    Pass it as `Agent(..., event_stream_handler=TaskEventStreamHandler())`, to `agent.run`,
    or to `TemporalAgent(agent, event_stream_handler=...)`. It must run inside an activity
    of a plugged worker (`TemporalAgent` does that; a plain agent is run from your activity).

    Args:
        turn_type: The task type of model responses.
        tool_type: The task type of tool calls.
    """

    def __init__(self, *, turn_type: str = CHAT_TURN_TYPE, tool_type: str = WORKING_TYPE) -> None:
        self.turn_type = turn_type
        self.tool_type = tool_type
        # Tool calls seen by this worker, for the result events that come alone (durable runs).
        self._calls: OrderedDict[str, dict[str, Any]] = OrderedDict()

    async def __call__(self, ctx: Any, stream: AsyncIterable[Any]) -> None:
        events = aiter(stream)
        first = await anext(events, None)
        if first is None:
            return
        if isinstance(first, _RESPONSE_EVENTS):
            await self._turn(first, events, stream, _model_name(ctx))
        else:
            await self._tools(first, events)

    async def _turn(
        self, first: Any, events: AsyncIterator[Any], stream: Any, model: str | None
    ) -> None:
        turn = _Turn(initial_turn(model))
        async with Task(type=self.turn_type, state=initial_turn(model)) as task:
            await task.update_state(turn.feed(first))
            async for event in events:
                if changed := turn.feed(event):
                    await task.update_state(changed)
            await task.update_state(_response_fields(stream))

    async def _tools(self, first: Any, events: AsyncIterator[Any]) -> None:
        # Each tool's task ends with its result; calls left without one end with the stream.
        open_tools: dict[str, Task[Any]] = {}
        try:
            await self._tool_event(first, open_tools)
            async for event in events:
                await self._tool_event(event, open_tools)
        except BaseException as e:
            failed = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
            for task in open_tools.values():
                await _set_result(task, failed)
                await task.__aexit__(type(e), e, e.__traceback__)
            raise
        for task in open_tools.values():
            await task.__aexit__(None, None, None)

    async def _tool_event(self, event: Any, open_tools: dict[str, Task[Any]]) -> None:
        if isinstance(event, _messages.FunctionToolCallEvent):
            call = self._remember(event.part)
            task = Task(type=self.tool_type, state=_working(call, {"status": "running"}))
            open_tools[call["toolCallId"]] = await task.__aenter__()
        elif isinstance(event, _messages.FunctionToolResultEvent):
            result = _tool_result(event.part)
            opened = open_tools.pop(event.tool_call_id, None)
            if opened is not None:
                await _set_result(opened, result)
                await opened.__aexit__(None, None, None)
                return
            call = self._calls.get(event.tool_call_id) or _unseen_call(event.part)
            async with Task(type=self.tool_type, state=_working(call, result)):
                pass
        elif isinstance(event, _messages.ModelResponseRejectedEvent):
            async with Task(type=self.tool_type, state=_rejected(event)):
                pass

    def _remember(self, part: Any) -> dict[str, Any]:
        call = {
            "toolCallId": part.tool_call_id,
            "name": part.tool_name,
            "arguments": part.args_as_dict(),
            "content": part.args_as_json_str(),
        }
        self._calls[part.tool_call_id] = call
        while len(self._calls) > _KNOWN_CALLS:
            self._calls.popitem(last=False)
        return call


class _Turn:
    """Folds one model response's stream events into `chat_turn` keys."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.kinds: dict[int, str] = {}
        self.calls: dict[int, int] = {}  # part index -> position in tool_calls

    def feed(self, event: Any) -> dict[str, Any]:
        if isinstance(event, _messages.PartStartEvent):
            return self._start(event.index, event.part)
        if isinstance(event, _messages.PartDeltaEvent):
            return self._delta(event.index, event.delta)
        return {}

    def _start(self, index: int, part: Any) -> dict[str, Any]:
        if isinstance(part, _messages.TextPart):
            return self._text(index, "content", part.content)
        if isinstance(part, _messages.ThinkingPart):
            return self._text(index, "thinking", part.content)
        if isinstance(part, _messages.ToolCallPart):
            self.kinds[index] = "tool_call"
            self.calls[index] = len(self.state["tool_calls"])
            call = {
                "index": self.calls[index],
                "toolCallId": part.tool_call_id,
                "name": part.tool_name,
                "arguments": "",
                "result": {"status": "pending"},
            }
            self.state["tool_calls"] = [*self.state["tool_calls"], call]
            return self._arguments(index, part.args)
        return {}

    def _delta(self, index: int, delta: Any) -> dict[str, Any]:
        if isinstance(delta, _messages.TextPartDelta):
            return self._text(index, "content", delta.content_delta)
        if isinstance(delta, _messages.ThinkingPartDelta):
            return self._text(index, "thinking", delta.content_delta or "")
        if isinstance(delta, _messages.ToolCallPartDelta) and index in self.calls:
            call = self.state["tool_calls"][self.calls[index]]
            call["name"] += delta.tool_name_delta or ""
            return self._arguments(index, delta.args_delta)
        return {}

    def _text(self, index: int, key: str, text: str) -> dict[str, Any]:
        self.kinds[index] = key
        self.state[key] += text
        return {key: self.state[key]} if text else {}

    def _arguments(self, index: int, args: str | dict[str, Any] | None) -> dict[str, Any]:
        call = self.state["tool_calls"][self.calls[index]]
        if isinstance(args, dict):
            args = _json_text(to_jsonable_python(args))
        call["arguments"] += args or ""
        return {"tool_calls": [dict(c) for c in self.state["tool_calls"]]}


def _model_name(ctx: Any) -> str | None:
    """The run's model name, when its context has one (a durable run's context may refuse
    to give its model in an activity)."""
    try:
        name = ctx.model.model_name
    except Exception:
        return None
    return name if isinstance(name, str) else None


def _response_fields(stream: Any) -> dict[str, Any]:
    """The model name, finish reason and usage of the finished response, when the stream
    tells them (a durable run hands the handler the events only)."""
    response = getattr(stream, "response", None)
    if response is None:
        return {}
    usage = response.usage
    fields: dict[str, Any] = {
        "usage": {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
        }
    }
    if response.model_name:
        fields["model"] = response.model_name
    if response.finish_reason:
        fields["finish_reason"] = response.finish_reason
    return fields


def _working(call: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """A `working` task state (Mistral's ChatAssistantWorkingTask) for a tool call."""
    return {
        "type": "tool",
        "title": call["name"],
        "content": call["content"],
        "toolUIState": {
            "type": "generic_tool",
            "toolCallId": call["toolCallId"],
            "name": call["name"],
            "arguments": call["arguments"],
            "result": result,
        },
    }


def _rejected(event: Any) -> dict[str, Any]:
    """A `working` task state for a model response rejected and asked again."""
    reason = getattr(event.reason, "content", None) or type(event.reason).__name__
    feedback = to_jsonable_python(reason, fallback=str)
    content = feedback if isinstance(feedback, str) else _json_text(feedback)
    return {"type": "retry", "title": "Response rejected", "content": content, "toolUIState": None}


def _unseen_call(part: Any) -> dict[str, Any]:
    """A call known only from its result: its arguments were streamed elsewhere."""
    return {"toolCallId": part.tool_call_id, "name": part.tool_name, "arguments": {}, "content": ""}


def _tool_result(part: Any) -> dict[str, Any]:
    """Mistral's ToolResult for a tool's return: success, or failed with the model's retry
    prompt or the error."""
    content = to_jsonable_python(part.content, fallback=str)
    if getattr(part, "outcome", "success") == "success":
        return {"status": "success", "value": content}
    return {"status": "failed", "error": content}


async def _set_result(task: Task[Any], result: dict[str, Any]) -> None:
    ui = dict(task.state["toolUIState"])
    ui["result"] = result
    await task.update_state({"toolUIState": ui})


def _json_text(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()
