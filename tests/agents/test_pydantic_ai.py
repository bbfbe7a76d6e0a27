"""A real pydantic-ai agent, run in an activity against a scripted streaming model: the
task states a consumer rebuilds for each model turn and each tool call."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from pydantic_ai import Agent, ModelRetry
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models.function import AgentInfo, DeltaThinkingPart, DeltaToolCall, FunctionModel

import mistral_workflows as workflows
from mistral_workflows.agents import ChatTurnState
from mistral_workflows.agents.pydantic_ai import TaskEventStreamHandler
from tests.agents.workflows import ModelCall
from tests.support import plugged_client, rebuilt, running_worker, task_events, unique

USAGE = {"prompt_tokens": 50, "completion_tokens": 11, "total_tokens": 61}


async def scripted(messages: list[ModelMessage], info: AgentInfo) -> Any:
    """Turn 1: thinking, text and two tool calls (arguments in pieces); turn 2: an answer
    the output validator rejects; turn 3: the answer."""
    turn = sum(1 for m in messages if m.kind == "response") + 1
    if turn == 1:
        pieces: list[Any] = [
            {0: DeltaThinkingPart(content="Need ")},
            {0: DeltaThinkingPart(content="weather.")},
            "Checking.",
            {2: DeltaToolCall(name="weather", json_args='{"ci', tool_call_id="call_a")},
            {2: DeltaToolCall(json_args='ty": "Paris"}')},
            {3: DeltaToolCall(name="flaky", json_args="{}", tool_call_id="call_b")},
        ]
    elif turn == 2:
        pieces = ["Rainy?"]
    else:
        pieces = ["Sunny ", "in Paris."]
    for piece in pieces:
        await asyncio.sleep(0)  # An LLM client awaits its next chunk: one event per piece.
        yield piece


def weather(city: str) -> str:
    return f"sunny in {city}"


def flaky() -> str:
    raise ModelRetry("service busy, try later")


def broken() -> str:
    raise RuntimeError("disk on fire")


def no_rain(output: str) -> str:
    if "Rainy" in output:
        raise ModelRetry("check the forecast first")
    return output


async def broken_script(messages: list[ModelMessage], info: AgentInfo) -> Any:
    """One turn that calls the broken tool."""
    yield {0: DeltaToolCall(name="broken", json_args="{}", tool_call_id="call_x")}


def weather_agent(*tools: Any) -> Agent[None, str]:
    agent = Agent(FunctionModel(stream_function=scripted), tools=tools)
    agent.output_validator(no_rain)
    return agent


@workflows.activity()
async def run_weather_agent() -> str:
    agent = weather_agent(weather, flaky)
    result = await agent.run("Weather?", event_stream_handler=TaskEventStreamHandler())
    return result.output


@workflows.activity()
async def run_broken_agent() -> str:
    agent = Agent(FunctionModel(stream_function=broken_script), tools=[broken])
    result = await agent.run("Weather?", event_stream_handler=TaskEventStreamHandler())
    return result.output


async def run_states(temporal_address, nats_url, task_queue, activity) -> tuple[Any, list]:
    """Run `activity`; return its result and each (task type, status, state) a consumer
    rebuilds, event by event."""
    client = await plugged_client(temporal_address, nats_url, max_delay=0)
    wid = unique("agent")
    async with running_worker(client, task_queue, [ModelCall], [activity]):
        handle = await client.start_workflow(
            ModelCall.run, args=[activity.__name__, [], 1], id=wid, task_queue=task_queue
        )
        try:
            result: Any = await handle.result()
        except Exception as e:
            result = e
    states = rebuilt([])
    seen = []
    for event in await task_events(nats_url, workflow_exec_id=wid):
        task = states.apply(event)
        assert task is not None
        seen.append((task.task_type, task.status, copy.deepcopy(task.state)))
    return result, seen


def turn(**fields: Any) -> dict[str, Any]:
    return {**ChatTurnState(model="function::scripted").model_dump(mode="json"), **fields}


def call(index: int, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    pending = {"status": "pending"}
    return {
        "index": index,
        "toolCallId": call_id,
        "name": name,
        "arguments": arguments,
        "result": pending,
    }


def working(call_id: str, name: str, arguments: dict[str, Any], result: dict[str, Any]):
    return {
        "type": "tool",
        "title": name,
        "content": "{}" if not arguments else '{"city":"Paris"}',
        "toolUIState": {
            "type": "generic_tool",
            "toolCallId": call_id,
            "name": name,
            "arguments": arguments,
            "result": result,
        },
    }


async def test_an_agent_run_streams_turns_and_tools(temporal_address, nats_url, task_queue):
    """Thinking, text, two tool calls in pieces, a tool's retry, a rejected answer, the
    final answer: each state a consumer rebuilds, in order."""
    result, seen = await run_states(temporal_address, nats_url, task_queue, run_weather_agent)
    assert result == "Sunny in Paris."
    a0 = call(0, "call_a", "weather", '{"ci')
    a1 = call(0, "call_a", "weather", '{"city": "Paris"}')
    b = call(1, "call_b", "flaky", "{}")
    checking = turn(thinking="Need weather.", content="Checking.")
    t1 = {**checking, "tool_calls": [a1, b]}
    ended1 = {**t1, "model": "function::scripted", "usage": USAGE}
    paris = {"city": "Paris"}
    sunny = {"status": "success", "value": "sunny in Paris"}
    busy = {"status": "failed", "error": "service busy, try later"}
    expected = [
        ("chat_turn", "running", turn()),
        ("chat_turn", "running", turn(thinking="Need ")),
        ("chat_turn", "running", turn(thinking="Need weather.")),
        ("chat_turn", "running", checking),
        (
            "chat_turn",
            "running",
            turn(thinking="Need weather.", content="Checking.", tool_calls=[a0]),
        ),
        (
            "chat_turn",
            "running",
            turn(thinking="Need weather.", content="Checking.", tool_calls=[a1]),
        ),
        ("chat_turn", "running", t1),
        ("chat_turn", "running", ended1),
        ("chat_turn", "completed", ended1),
        ("working", "running", working("call_a", "weather", paris, {"status": "running"})),
        ("working", "running", working("call_b", "flaky", {}, {"status": "running"})),
        ("working", "running", working("call_a", "weather", paris, sunny)),
        ("working", "completed", working("call_a", "weather", paris, sunny)),
        ("working", "running", working("call_b", "flaky", {}, busy)),
        ("working", "completed", working("call_b", "flaky", {}, busy)),
    ]
    u2 = {"prompt_tokens": 50, "completion_tokens": 1, "total_tokens": 51}
    u3 = {"prompt_tokens": 50, "completion_tokens": 4, "total_tokens": 54}
    rainy = turn(content="Rainy?")
    sunny_turn = turn(content="Sunny in Paris.")
    rejected = {
        "type": "retry",
        "title": "Response rejected",
        "content": "check the forecast first",
        "toolUIState": None,
    }
    ended = {"model": "function::scripted"}
    expected += [
        ("chat_turn", "running", turn()),
        ("chat_turn", "running", rainy),
        ("chat_turn", "running", {**rainy, **ended, "usage": u2}),
        ("chat_turn", "completed", {**rainy, **ended, "usage": u2}),
        ("working", "running", rejected),
        ("working", "completed", rejected),
        ("chat_turn", "running", turn()),
        ("chat_turn", "running", turn(content="Sunny ")),
        ("chat_turn", "running", sunny_turn),
        ("chat_turn", "running", {**sunny_turn, **ended, "usage": u3}),
        ("chat_turn", "completed", {**sunny_turn, **ended, "usage": u3}),
    ]
    assert seen == expected


async def test_a_failed_tool_fails_its_working_task(temporal_address, nats_url, task_queue):
    """A tool that raises: its working task shows the error and ends FAILED, and so does
    the activity."""
    result, seen = await run_states(temporal_address, nats_url, task_queue, run_broken_agent)
    assert "disk on fire" in str(result.cause.cause)
    failed = {"status": "failed", "error": "RuntimeError: disk on fire"}
    assert [s for s in seen if s[0] == "working"] == [
        ("working", "running", working("call_x", "broken", {}, {"status": "running"})),
        ("working", "running", working("call_x", "broken", {}, failed)),
        ("working", "failed", working("call_x", "broken", {}, failed)),
    ]
