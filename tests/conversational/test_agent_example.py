"""The agent example end to end: the consumer rebuilds its todo list, each model turn
(thinking, text, a tool call whose arguments arrive in pieces) and the tool's working task
(pending, running, success), all in Mistral's shapes; a failing tool shows `failed`."""

from __future__ import annotations

import json
from typing import Any

from examples import agent, scripted_model
from mistral_workflows import StreamEvent, TaskStates
from mistral_workflows.core.events import EventType
from tests.conversational import mistral_shapes
from tests.support import (
    official_models,
    plugged_client,
    run_call,
    running_worker,
    task_events,
    unique,
)
from tests.workflows import Call

CALL = {"id": "call-1", "name": "get_weather", "arguments": json.dumps({"city": "Paris"})}


def states_of(events: list[StreamEvent], task_type: str) -> list[list[Any]]:
    """For each task of `task_type`, in start order, the states a consumer holds after each
    of its events, repeats left out (the final event repeats the last state)."""
    states: TaskStates = TaskStates()
    by_task: dict[str, list[Any]] = {}
    for event in events:
        task = states.apply(event)
        if task is not None and task.task_type == task_type:
            seen = by_task.setdefault(task.task_id, [])
            state = json.loads(json.dumps(task.state))
            if not seen or seen[-1] != state:
                seen.append(state)
    return list(by_task.values())


async def test_agent_streams_its_todo_list_turns_and_tool(temporal_address, nats_url, task_queue):
    """The agent's reply is the scripted answer; its events rebuild a list that ends all
    done, a first turn whose tool call's arguments grew in pieces, a working task going
    pending -> running -> success, and a second turn with the answer text."""
    client = await plugged_client(temporal_address, nats_url)
    wid = unique("agent")
    async with running_worker(
        client, task_queue, [agent.AgentWorkflow], [agent.model_turn, agent.run_tool]
    ):
        reply = await client.execute_workflow(
            agent.AgentWorkflow.run, "Weather?", id=wid, task_queue=task_queue
        )
    events = await task_events(nats_url, workflow_exec_id=wid)
    await official_models(nats_url, workflow_exec_id=wid)  # each event parses
    assert reply == scripted_model.ANSWER

    [todo] = states_of(events, "todo_list")
    final = mistral_shapes.TodoListState.model_validate(todo[-1])
    assert [i.status for i in final.items] == ["done"] * 3

    first, second = states_of(events, "assistant")
    assert first[-1]["tool_calls"] == [CALL]
    assert first[-1]["finish_reason"] == "tool_calls"
    assert first[-1]["reasoning"].endswith("get_weather.")
    pieces = {s["tool_calls"][0]["arguments"] for s in first if s["tool_calls"]}
    assert len(pieces) >= 3, "the arguments did not stream in pieces"
    assert second[-1]["content"] == scripted_model.ANSWER
    assert second[-1]["usage"]["total_tokens"] > 0

    [working] = states_of(events, "working")
    parsed = [mistral_shapes.ChatAssistantWorkingTask.model_validate(s) for s in working]
    results = [p.toolUIState.result.status for p in parsed if p.toolUIState]
    assert results == ["pending", "running", "success"]
    assert parsed[-1].toolUIState.result.value == {"city": "Paris", "celsius": 18, "sky": "sunny"}


async def test_a_failing_tool_shows_failed(temporal_address, nats_url, task_queue):
    """A tool that raises leaves its working task `failed` with the error, in Mistral's
    shape, and the task ends CUSTOM_TASK_FAILED."""
    bad = {**CALL, "arguments": json.dumps({"city": ""})}
    result, events = await run_call(
        temporal_address, nats_url, task_queue, Call("run_tool", [bad]), [agent.run_tool]
    )
    assert "get_weather needs a city" in result["failed"]
    [working] = states_of(events, "working")
    last = mistral_shapes.ChatAssistantWorkingTask.model_validate(working[-1])
    assert last.toolUIState is not None
    assert last.toolUIState.result.status == "failed"
    assert last.toolUIState.result.error == "get_weather needs a city"
    assert events[-1].data.event_type == EventType.CUSTOM_TASK_FAILED
