"""An OpenAI Agents SDK agent run by temporalio's OpenAIAgentsPlugin, with a scripted
model: the workflow (sandbox-safe) and the model the worker's provider hands out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from agents import Agent, Model, ModelProvider, Runner, function_tool


@function_tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@workflow.defn
class SdkWeatherAgent:
    """Runs an Agents SDK agent whose model calls go through the plugin's model activity."""

    @workflow.run
    async def run(self, prompt: str) -> str:
        agent = Agent(
            name="weather", instructions="Answer briefly.", model="scripted", tools=[weather]
        )
        result = await Runner.run(agent, prompt)
        return str(result.final_output)


class ScriptedModel(Model):
    """Streams scripted Responses events: turn 1 text and two tool calls in pieces (its
    first attempt breaks mid-stream), turn 2 the answer."""

    breaks = 1
    tool = "weather"

    async def get_response(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the task-streaming model calls stream_response")

    async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        items = kwargs["input"] if "input" in kwargs else args[1]
        answered = not isinstance(items, str) and any(
            dict(item).get("type") == "function_call_output" for item in items
        )
        for event in second_turn() if answered else first_turn(self):
            await asyncio.sleep(0)  # A network client awaits each event.
            if isinstance(event, Exception):
                raise event
            yield event


def first_turn(model: ScriptedModel) -> list[Any]:
    from openai.types.responses import ResponseFunctionCallArgumentsDeltaEvent as ArgsDelta
    from openai.types.responses import ResponseFunctionToolCall, ResponseOutputItemAddedEvent

    def call(i: int, call_id: str) -> ResponseFunctionToolCall:
        return ResponseFunctionToolCall(
            arguments="", call_id=call_id, name=model.tool, type="function_call", id=f"fc{i}"
        )

    events: list[Any] = [created(), text("Check"), text("ing.")]
    if model.breaks:
        model.breaks -= 1
        return [*events, RuntimeError("connection reset by the model")]
    pieces = [
        ResponseOutputItemAddedEvent.model_construct(
            type="response.output_item.added", output_index=1, item=call(1, "call_a")
        ),
        ArgsDelta.model_construct(
            type="response.function_call_arguments.delta", output_index=1, delta='{"city": '
        ),
        ArgsDelta.model_construct(
            type="response.function_call_arguments.delta", output_index=1, delta='"Paris"}'
        ),
        ResponseOutputItemAddedEvent.model_construct(
            type="response.output_item.added", output_index=2, item=call(2, "call_b")
        ),
        ArgsDelta.model_construct(
            type="response.function_call_arguments.delta", output_index=2, delta='{"city": "Rome"}'
        ),
    ]
    done = [
        message("Checking."),
        ResponseFunctionToolCall(
            arguments='{"city": "Paris"}', call_id="call_a", name=model.tool, type="function_call"
        ),
        ResponseFunctionToolCall(
            arguments='{"city": "Rome"}', call_id="call_b", name=model.tool, type="function_call"
        ),
    ]
    return [*events, *pieces, completed(done)]


def second_turn() -> list[Any]:
    return [created(), text("Sunny."), completed([message("Sunny.")])]


def created() -> Any:
    from openai.types.responses import Response, ResponseCreatedEvent

    response = Response.model_construct(id="resp", model="scripted", output=[])
    return ResponseCreatedEvent.model_construct(type="response.created", response=response)


def text(delta: str) -> Any:
    from openai.types.responses import ResponseTextDeltaEvent

    return ResponseTextDeltaEvent.model_construct(type="response.output_text.delta", delta=delta)


def message(content: str) -> Any:
    from openai.types.responses import ResponseOutputMessage, ResponseOutputText

    part = ResponseOutputText(text=content, annotations=[], type="output_text")
    return ResponseOutputMessage(
        id="msg", content=[part], role="assistant", status="completed", type="message"
    )


def completed(output: list[Any]) -> Any:
    from openai.types.responses import Response, ResponseCompletedEvent, ResponseUsage

    usage = ResponseUsage(
        input_tokens=20,
        output_tokens=8,
        total_tokens=28,
        input_tokens_details={"cached_tokens": 0, "cache_write_tokens": 0},
        output_tokens_details={"reasoning_tokens": 0},
    )
    response = Response.model_construct(id="resp", model="scripted", output=output, usage=usage)
    return ResponseCompletedEvent.model_construct(type="response.completed", response=response)


class ScriptedProvider(ModelProvider):
    def __init__(self) -> None:
        self.model = ScriptedModel()

    def get_model(self, model_name: str | None) -> Model:
        return self.model
