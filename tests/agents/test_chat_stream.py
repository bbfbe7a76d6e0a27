"""Chat-completion streams of the real `openai` and `mistralai` clients into a task: the
states a consumer rebuilds, one per chunk."""

from __future__ import annotations

import copy
from typing import Any

import mistral_workflows as workflows
from mistral_workflows.agents import ChatTurnState, stream_chat_completion
from tests.agents.scripted import chunk, chunk_server, tool_delta, usage_chunk
from tests.agents.workflows import ModelCall
from tests.support import plugged_client, rebuilt, running_worker, task_events, unique

MESSAGES = [{"role": "user", "content": "Weather in Paris and Rome?"}]


@workflows.activity()
async def openai_turn(base_url: str) -> dict[str, Any]:
    from openai import AsyncOpenAI

    async with AsyncOpenAI(base_url=f"{base_url}/v1", api_key="test", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="scripted",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        turn = await stream_chat_completion("chat_turn", stream)
    return turn.to_message()


@workflows.activity()
async def mistral_turn(base_url: str) -> dict[str, Any]:
    import httpx2
    from mistralai.client import Mistral

    async with httpx2.AsyncClient() as http:
        client = Mistral(api_key="test", server_url=base_url, async_client=http)
        stream = await client.chat.stream_async(model="scripted", messages=MESSAGES)
        turn = await stream_chat_completion("chat_turn", stream)
    return turn.to_message()


def tool_call(index: int, call_id: str, arguments: str) -> dict[str, Any]:
    return {
        "index": index,
        "toolCallId": call_id,
        "name": "weather",
        "arguments": arguments,
        "result": {"status": "pending"},
    }


def two_tool_calls(thinking: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A script (thinking, text, two tool calls whose arguments arrive in pieces, finish,
    usage) and the state expected after each chunk."""
    script = [
        chunk({"role": "assistant", "content": ""}),
        chunk(thinking),
        chunk({"content": "Checking "}),
        chunk({"content": "both."}),
        chunk(tool_delta(0, "call_a", "weather", '{"ci')),
        chunk(tool_delta(0, args='ty": "Paris"}')),
        chunk(tool_delta(1, "call_b", "weather", '{"city": ')),
        chunk(tool_delta(1, args='"Rome"}')),
        chunk({}, finish="tool_calls"),
        usage_chunk(12, 30),
    ]
    steps: list[dict[str, Any]] = [
        {"model": "scripted"},
        {"thinking": "Need the weather."},
        {"content": "Checking "},
        {"content": "Checking both."},
        {"tool_calls": [tool_call(0, "call_a", '{"ci')]},
        {"tool_calls": [tool_call(0, "call_a", '{"city": "Paris"}')]},
        {
            "tool_calls": [
                tool_call(0, "call_a", '{"city": "Paris"}'),
                tool_call(1, "call_b", '{"city": '),
            ]
        },
        {
            "tool_calls": [
                tool_call(0, "call_a", '{"city": "Paris"}'),
                tool_call(1, "call_b", '{"city": "Rome"}'),
            ]
        },
        {"finish_reason": "tool_calls"},
        {"usage": {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42}},
    ]
    state = ChatTurnState().model_dump(mode="json")
    states = [copy.deepcopy(state)]
    for step in steps:
        state.update(step)
        states.append(copy.deepcopy(state))
    return script, states


async def run_turn(
    temporal_address: str, nats_url: str, task_queue: str, activity: Any, scripts: list[Any]
) -> tuple[Any, list[tuple[int, str, Any]]]:
    """Run `activity` against `scripts`; return its result and every (attempt, status,
    state) a consumer rebuilds, in order."""
    client = await plugged_client(temporal_address, nats_url)
    wid = unique("chat")
    async with (
        chunk_server(nats_url, wid, scripts) as server,
        running_worker(client, task_queue, [ModelCall], [activity]),
    ):
        args = [activity.__name__, [server.url], len(scripts)]
        result = await client.execute_workflow(
            ModelCall.run, args=args, id=wid, task_queue=task_queue
        )
    events = await task_events(nats_url, workflow_exec_id=wid, stream="chat_turn")
    seen = []
    for i in range(len(events)):
        (task,) = list(rebuilt(events[: i + 1]))
        seen.append((task.attempt, task.status, task.state))
    return result, seen


async def test_openai_stream_rebuilds_one_state_per_chunk(temporal_address, nats_url, task_queue):
    """openai: thinking, text, two tool calls in pieces, finish and usage, state by state."""
    script, states = two_tool_calls({"reasoning_content": "Need the weather."})
    result, seen = await run_turn(temporal_address, nats_url, task_queue, openai_turn, [script])
    expected = [(1, "running", s) for s in states] + [(1, "completed", states[-1])]
    assert seen == expected
    assert result["tool_calls"][1] == {
        "id": "call_b",
        "type": "function",
        "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
    }
    assert result["content"] == "Checking both."


async def test_mistral_stream_rebuilds_one_state_per_chunk(temporal_address, nats_url, task_queue):
    """mistralai: the same turn, its thinking sent as a Mistral `thinking` content chunk."""
    thinking = {
        "content": [
            {"type": "thinking", "thinking": [{"type": "text", "text": "Need the weather."}]}
        ]
    }
    script, states = two_tool_calls(thinking)
    result, seen = await run_turn(temporal_address, nats_url, task_queue, mistral_turn, [script])
    assert seen == [(1, "running", s) for s in states] + [(1, "completed", states[-1])]
    assert [c["id"] for c in result["tool_calls"]] == ["call_a", "call_b"]


async def test_a_retried_model_call_replaces_the_failed_attempt(
    temporal_address, nats_url, task_queue
):
    """A stream that breaks fails its attempt's task; the retry's states replace it."""
    broken = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}), None]
    good = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hello"})]
    result, seen = await run_turn(
        temporal_address, nats_url, task_queue, openai_turn, [broken, good]
    )
    base = ChatTurnState().model_dump(mode="json")
    named = {**base, "model": "scripted"}
    assert [(a, s) for a, s, _ in seen] == [
        (1, "running"),
        (1, "running"),
        (1, "running"),
        (1, "failed"),
        (2, "running"),
        (2, "running"),
        (2, "running"),
        (2, "completed"),
    ]
    assert [state for _, _, state in seen][4:] == [
        base,
        named,
        {**named, "content": "Hello"},
        {**named, "content": "Hello"},
    ]
    assert seen[2][2]["content"] == "Hel"
    assert result["content"] == "Hello"


@workflows.activity()
async def turn_in_own_task(base_url: str) -> dict[str, Any]:
    from openai import AsyncOpenAI

    from mistral_workflows.core.task import Task

    async with (
        AsyncOpenAI(base_url=f"{base_url}/v1", api_key="test", max_retries=0) as client,
        Task(type="chat_turn", state={"conversation": "c-1"}) as task,
    ):
        stream = await client.chat.completions.create(
            model="scripted", messages=MESSAGES, stream=True
        )
        await stream_chat_completion(task, stream)
    return task.state


async def test_a_task_of_your_own_gets_the_turn_next_to_its_keys(
    temporal_address, nats_url, task_queue
):
    """An entered Task passed in keeps its own keys and gets the chat_turn ones."""
    script = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hi."})]
    _, seen = await run_turn(temporal_address, nats_url, task_queue, turn_in_own_task, [script])
    expected = {
        **ChatTurnState(model="scripted", content="Hi.").model_dump(),
        "conversation": "c-1",
    }
    assert seen[0] == (1, "running", {"conversation": "c-1"})
    assert seen[-1] == (1, "completed", expected)
