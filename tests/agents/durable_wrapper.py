"""The same kind of durable agent through pydantic-ai's `TemporalAgent` wrapper, whose
`event_stream_handler=` runs in the model-request activity too."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.durable_exec.temporal import TemporalAgent
from pydantic_ai.exceptions import PydanticAIDeprecationWarning
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models.function import AgentInfo, FunctionModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mistral_workflows.agents.pydantic_ai import TaskEventStreamHandler


async def hello(messages: list[ModelMessage], info: AgentInfo) -> Any:
    for piece in ["Hel", "lo."]:
        await asyncio.sleep(0)
        yield piece


with warnings.catch_warnings():
    # TemporalAgent is deprecated in favour of TemporalDurability, and still supported.
    warnings.simplefilter("ignore", PydanticAIDeprecationWarning)
    wrapped_agent = TemporalAgent(
        Agent(FunctionModel(stream_function=hello, model_name="scripted"), name="hello"),
        event_stream_handler=TaskEventStreamHandler(),
    )


@workflow.defn
class HelloAgent:
    """Runs the wrapped agent."""

    @workflow.run
    async def run(self, prompt: str) -> str:
        return (await wrapped_agent.run(prompt)).output
