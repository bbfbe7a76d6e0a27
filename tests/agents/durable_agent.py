"""A durable pydantic-ai agent (TemporalDurability) whose handler streams into tasks. Its
scripted model breaks once mid-stream, so Temporal retries the model-request activity."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.durable_exec.temporal import TemporalDurability
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityConfig

with workflow.unsafe.imports_passed_through():
    from mistral_workflows.agents.pydantic_ai import TaskEventStreamHandler

BREAKS = {"left": 1}


async def durable_script(messages: list[ModelMessage], info: AgentInfo) -> Any:
    """Turn 1: text and a tool call in pieces (the first attempt breaks after "Chec");
    turn 2: the answer."""
    if not any(m.kind == "response" for m in messages):
        yield "Chec"
        await asyncio.sleep(0)
        if BREAKS["left"]:
            BREAKS["left"] -= 1
            raise RuntimeError("connection reset by the model")
        yield "king."
        await asyncio.sleep(0)
        yield {1: DeltaToolCall(name="weather", json_args='{"city": ', tool_call_id="call_a")}
        await asyncio.sleep(0)
        yield {1: DeltaToolCall(json_args='"Paris"}')}
    else:
        yield "Sunny."


def weather(city: str) -> str:
    return f"sunny in {city}"


quick_retries = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=3)
agent = Agent(
    FunctionModel(stream_function=durable_script, model_name="scripted"),
    name="weather",
    tools=[weather],
    capabilities=[
        TemporalDurability(
            event_stream_handler=TaskEventStreamHandler(),
            activity_config=ActivityConfig(
                start_to_close_timeout=timedelta(seconds=60), retry_policy=quick_retries
            ),
        )
    ],
)


@workflow.defn
class WeatherAgent:
    """Runs the durable agent on a prompt."""

    @workflow.run
    async def run(self, prompt: str) -> str:
        result = await agent.run(prompt)
        return result.output
