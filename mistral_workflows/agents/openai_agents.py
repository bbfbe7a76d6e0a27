"""OpenAI Agents SDK: a model provider whose model activity streams each response into a
`chat_turn` task.

    plugin = OpenAIAgentsPlugin(model_provider=TaskStreamingModelProvider(your_provider))

temporalio's `OpenAIAgentsPlugin` runs every model call of an agent in its model activity
through the provider it is given. This provider's models answer `get_response` by calling
the wrapped model's `stream_response`, streaming the events into a task as they come, and
returning the `ModelResponse` the plugin expects, built from the final response.
"""

from __future__ import annotations

from typing import Any

try:
    from agents import Model, ModelProvider, ModelResponse, Usage
except ModuleNotFoundError as e:  # pragma: no cover - exercised in a subprocess by the tests
    if (e.name or "").partition(".")[0] != "agents":
        raise  # installed, but something it needs is missing: its own error says what
    raise ImportError(
        "mistral_workflows.agents.openai_agents needs openai-agents: "
        "pip install 'mistral-workflows[openai-agents]'"
    ) from e

from mistral_workflows.agents.state import CHAT_TURN_TYPE, initial_turn
from mistral_workflows.core.task import Task

__all__ = ["TaskStreamingModelProvider"]

_FAILED = {"response.failed", "response.incomplete", "error", "response.error"}


class TaskStreamingModelProvider(ModelProvider):
    """Wraps a model provider so that each model response streams into a task.

    Args:
        provider: The provider of the models to call; by default the SDK's `OpenAIProvider`
            without client retries (Temporal retries the activity).
        turn_type: The task type of model responses.
    """

    def __init__(self, provider: ModelProvider | None = None, *, turn_type: str = CHAT_TURN_TYPE):
        if provider is None:
            from agents import OpenAIProvider
            from openai import AsyncOpenAI

            provider = OpenAIProvider(openai_client=AsyncOpenAI(max_retries=0))
        self._provider = provider
        self.turn_type = turn_type

    def get_model(self, model_name: str | None) -> Model:
        return TaskStreamingModel(self._provider.get_model(model_name), self.turn_type)

    async def aclose(self) -> None:
        await self._provider.aclose()


class TaskStreamingModel(Model):
    """A model whose `get_response` streams the wrapped model's response into a task."""

    def __init__(self, model: Model, turn_type: str = CHAT_TURN_TYPE) -> None:
        self.model = model
        self.turn_type = turn_type

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        turn = _ResponsesTurn()
        async with Task(type=self.turn_type, state=initial_turn()) as task:
            async for event in self.model.stream_response(*args, **kwargs):
                if changed := turn.feed(event):
                    await task.update_state(changed)
        return turn.model_response()

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        return self.model.stream_response(*args, **kwargs)

    async def close(self) -> None:
        await self.model.close()


class _ResponsesTurn:
    """Folds Responses API stream events into `chat_turn` keys."""

    def __init__(self) -> None:
        self.state = initial_turn()
        self.calls: dict[int, int] = {}  # output_index -> position in tool_calls
        self.response: Any = None

    def feed(self, event: Any) -> dict[str, Any]:
        kind = getattr(event, "type", None)
        if kind in _FAILED:
            raise RuntimeError(f"the model stream ended with {kind}: {_reason(event)}")
        if kind == "response.created" and event.response.model:
            return self._set("model", event.response.model)
        if kind == "response.output_text.delta":
            return self._append("content", event.delta)
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            return self._append("thinking", event.delta)
        if kind == "response.output_item.added" and event.item.type == "function_call":
            return self._add_call(event.output_index, event.item)
        if kind == "response.function_call_arguments.delta" and event.output_index in self.calls:
            call = self.state["tool_calls"][self.calls[event.output_index]]
            call["arguments"] += event.delta
            return {"tool_calls": [dict(c) for c in self.state["tool_calls"]]}
        if kind == "response.completed":
            return self._completed(event.response)
        return {}

    def _set(self, key: str, value: Any) -> dict[str, Any]:
        self.state[key] = value
        return {key: value}

    def _append(self, key: str, text: str) -> dict[str, Any]:
        return self._set(key, self.state[key] + text) if text else {}

    def _add_call(self, output_index: int, item: Any) -> dict[str, Any]:
        self.calls[output_index] = len(self.state["tool_calls"])
        call = {
            "index": self.calls[output_index],
            "toolCallId": item.call_id,
            "name": item.name,
            "arguments": item.arguments or "",
            "result": {"status": "pending"},
        }
        return self._set("tool_calls", [*self.state["tool_calls"], call])

    def _completed(self, response: Any) -> dict[str, Any]:
        self.response = response
        changed: dict[str, Any] = {}
        if response.model and response.model != self.state["model"]:
            changed["model"] = response.model
        calls = any(getattr(item, "type", None) == "function_call" for item in response.output)
        changed["finish_reason"] = "tool_calls" if calls else "stop"
        if usage := response.usage:
            changed["usage"] = {
                "prompt_tokens": usage.input_tokens,
                "completion_tokens": usage.output_tokens,
                "total_tokens": usage.total_tokens,
            }
        self.state.update(changed)
        return changed

    def model_response(self) -> ModelResponse:
        """What the plugin's model activity returns: the final response's output and usage."""
        if self.response is None:
            raise RuntimeError("the model stream ended without a response.completed event")
        usage = Usage(requests=1)
        if raw := self.response.usage:
            usage = Usage(
                requests=1,
                input_tokens=raw.input_tokens,
                output_tokens=raw.output_tokens,
                total_tokens=raw.total_tokens,
                input_tokens_details=raw.input_tokens_details,
                output_tokens_details=raw.output_tokens_details,
            )
        return ModelResponse(
            output=list(self.response.output), usage=usage, response_id=self.response.id
        )


def _reason(event: Any) -> str:
    response = getattr(event, "response", None)
    detail = getattr(response, "error", None) or getattr(response, "incomplete_details", None)
    return str(detail or getattr(event, "message", None) or "no detail")
