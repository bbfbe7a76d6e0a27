"""Agent streams: a chat completion (openai or mistralai client) and a durable pydantic-ai
agent, each streaming into tasks that consumers rebuild.

The chat activities take the server's URL, so they run against any OpenAI-compatible
endpoint (the tests point them at a local server that streams scripted chunks). The agent
uses pydantic-ai's `TestModel`, which streams without network: put your model there.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic_ai import Agent
    from pydantic_ai.durable_exec.temporal import TemporalDurability
    from pydantic_ai.models.test import TestModel

    import mistral_workflows as workflows
    from mistral_workflows import TaskStates, subscribe
    from mistral_workflows.agents import CHAT_TURN_TYPE, ChatTurnState, WorkingState
    from mistral_workflows.agents.pydantic_ai import TaskEventStreamHandler

MODEL = "mistral-small-latest"


@workflows.activity()
async def openai_chat(base_url: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    from openai import AsyncOpenAI

    from mistral_workflows.agents import stream_chat_completion

    async with AsyncOpenAI(base_url=base_url, api_key="unused-by-the-local-server") as client:
        stream = await client.chat.completions.create(
            model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
        )
        turn = await stream_chat_completion(CHAT_TURN_TYPE, stream)
    return turn.to_message()


@workflows.activity()
async def mistral_chat(server_url: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    import httpx2
    from mistralai.client import Mistral

    from mistral_workflows.agents import stream_chat_completion

    # An httpx client of our own, closed here: the SDK's own one is closed again when the
    # SDK object is collected, on whatever event loop runs then.
    async with httpx2.AsyncClient() as http:
        key = "unused-by-the-local-server"
        client = Mistral(api_key=key, server_url=server_url, async_client=http)
        stream = await client.chat.stream_async(model=MODEL, messages=messages)
        turn = await stream_chat_completion(CHAT_TURN_TYPE, stream)
    return turn.to_message()


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}"


weather_agent = Agent(
    TestModel(custom_output_text="Sunny in Paris."),
    name="weather_agent",
    tools=[get_weather],
    capabilities=[TemporalDurability(event_stream_handler=TaskEventStreamHandler())],
)


@workflow.defn
class WeatherAgentWorkflow:
    @workflow.run
    async def run(self, prompt: str) -> str:
        result = await weather_agent.run(prompt)
        return result.output


async def show_agent(nats_url: str, workflow_id: str) -> list[str]:
    """Print one line per model turn and tool call of the workflow, as each ends."""
    states, lines = TaskStates(), []
    async for event in subscribe(nats_url, workflow_exec_id=workflow_id, idle_timeout=1):
        task = states.apply(event)
        if task is None or task.status == "running":
            continue
        if task.task_type == CHAT_TURN_TYPE:
            turn = ChatTurnState.model_validate(task.state)
            calls = ", ".join(f"{c.name}({c.arguments})" for c in turn.tool_calls)
            lines.append(f"model: {turn.content!r} calls: [{calls}]")
        else:
            work = WorkingState.model_validate(task.state)
            result = work.toolUIState.result if work.toolUIState else None
            lines.append(f"{work.type} {work.title}: {result}")
        print(lines[-1])
    return lines
