"""A durable pydantic-ai agent under TemporalAgent: each model request streams live from
its activity, with the workflow's ids, and a retried model request is fenced."""

from __future__ import annotations

import copy

from pydantic_ai.durable_exec.temporal import AgentPlugin, PydanticAIPlugin
from temporalio.client import Client
from temporalio.worker import Worker

from mistral_workflows import MistralWorkflowsPlugin, TaskStates
from mistral_workflows.agents import ChatTurnState
from tests.agents.durable_agent import BREAKS, WeatherAgent, agent
from tests.support import task_events, unique


def turn(**fields):
    return {**ChatTurnState().model_dump(mode="json"), **fields}


async def test_each_model_request_streams_live_and_a_retry_is_fenced(
    temporal_address, nats_url, task_queue
):
    """The model request that breaks fails its attempt's chat_turn; the retried attempt
    replaces it; tools and the second turn follow, all under the workflow's id."""
    BREAKS["left"] = 1
    plugins = [MistralWorkflowsPlugin(nats_url=nats_url, max_delay=0), PydanticAIPlugin()]
    client = await Client.connect(temporal_address, plugins=plugins)
    wid = unique("durable")
    async with Worker(
        client, task_queue=task_queue, workflows=[WeatherAgent], plugins=[AgentPlugin(agent)]
    ):
        output = await client.execute_workflow(
            WeatherAgent.run, "Weather in Paris?", id=wid, task_queue=task_queue
        )
    assert output == "Sunny."
    events = await task_events(nats_url, workflow_exec_id=wid)
    assert {e.data.workflow_exec_id for e in events} == {wid}
    activities = [e.activity_context.activity_name for e in events]
    states, seen = TaskStates(), []
    for event in events:
        task = states.apply(event)
        if task is not None:
            seen.append((task.task_type, task.attempt, task.status, copy.deepcopy(task.state)))
    call = {"index": 0, "toolCallId": "call_a", "name": "weather", "result": {"status": "pending"}}
    start = turn(model="scripted")
    checking = {**start, "content": "Checking."}
    with_call = [{**call, "arguments": '{"city": '}]
    called = [{**call, "arguments": '{"city": "Paris"}'}]
    paris = {"city": "Paris"}
    tool = {"type": "generic_tool", "toolCallId": "call_a", "name": "weather", "arguments": paris}
    working = {"type": "tool", "title": "weather", "content": '{"city":"Paris"}'}
    running = {**working, "toolUIState": {**tool, "result": {"status": "running"}}}
    sunny = {"status": "success", "value": "sunny in Paris"}
    done = {**working, "toolUIState": {**tool, "result": sunny}}
    answer = {**start, "content": "Sunny."}
    assert seen == [
        ("chat_turn", 1, "running", start),
        ("chat_turn", 1, "running", {**start, "content": "Chec"}),
        ("chat_turn", 1, "failed", {**start, "content": "Chec"}),
        ("chat_turn", 2, "running", start),
        ("chat_turn", 2, "running", {**start, "content": "Chec"}),
        ("chat_turn", 2, "running", checking),
        ("chat_turn", 2, "running", {**checking, "tool_calls": with_call}),
        ("chat_turn", 2, "running", {**checking, "tool_calls": called}),
        ("chat_turn", 2, "completed", {**checking, "tool_calls": called}),
        ("working", 1, "running", running),
        ("working", 1, "completed", running),
        ("working", 1, "running", done),
        ("working", 1, "completed", done),
        ("chat_turn", 1, "running", start),
        ("chat_turn", 1, "running", answer),
        ("chat_turn", 1, "completed", answer),
    ]
    model, handler = "agent__weather__model_request_stream", "agent__weather__event_stream_handler"
    assert activities == [model] * 9 + [handler] * 4 + [model] * 3


async def test_the_temporal_agent_wrapper_streams_too(temporal_address, nats_url, task_queue):
    """Under the `TemporalAgent` wrapper the model request streams from its activity."""
    from tests.agents.durable_wrapper import HelloAgent, wrapped_agent

    plugins = [MistralWorkflowsPlugin(nats_url=nats_url, max_delay=0), PydanticAIPlugin()]
    client = await Client.connect(temporal_address, plugins=plugins)
    wid = unique("wrapped")
    worker_plugins = [AgentPlugin(wrapped_agent)]
    async with Worker(
        client, task_queue=task_queue, workflows=[HelloAgent], plugins=worker_plugins
    ):
        output = await client.execute_workflow(HelloAgent.run, "Hi", id=wid, task_queue=task_queue)
    assert output == "Hello."
    states, seen = TaskStates(), []
    for event in await task_events(nats_url, workflow_exec_id=wid):
        task = states.apply(event)
        assert event.activity_context.activity_name == "agent__hello__model_request_stream"
        seen.append((task.status, copy.deepcopy(task.state)))
    start = turn()  # The wrapper's run context does not give its model in an activity.
    assert seen == [
        ("running", start),
        ("running", {**start, "content": "Hel"}),
        ("running", {**start, "content": "Hello."}),
        ("completed", {**start, "content": "Hello."}),
    ]
