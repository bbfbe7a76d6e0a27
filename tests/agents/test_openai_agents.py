"""OpenAI Agents SDK under temporalio's OpenAIAgentsPlugin: the model activity streams each
response into a chat_turn task and returns what the plugin expects."""

from __future__ import annotations

import copy
from datetime import timedelta

from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.openai_agents import ModelActivityParameters, OpenAIAgentsPlugin
from temporalio.worker import Worker

from mistral_workflows import MistralWorkflowsPlugin, TaskStates
from mistral_workflows.agents import ChatTurnState
from mistral_workflows.agents.openai_agents import TaskStreamingModelProvider
from tests.agents.agents_sdk import ScriptedProvider, SdkWeatherAgent
from tests.support import task_events, unique


async def test_each_model_call_streams_from_the_model_activity(
    temporal_address, nats_url, task_queue
):
    """Text and two tool calls in pieces stream live; the broken first attempt is replaced
    by the retry; the run completes with the plugin's ModelResponse."""
    provider = ScriptedProvider()
    params = ModelActivityParameters(
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=3),
    )
    agents_plugin = OpenAIAgentsPlugin(
        model_params=params, model_provider=TaskStreamingModelProvider(provider)
    )
    plugins = [MistralWorkflowsPlugin(nats_url=nats_url, max_delay=0), agents_plugin]
    client = await Client.connect(temporal_address, plugins=plugins)
    wid = unique("sdk")
    async with Worker(client, task_queue=task_queue, workflows=[SdkWeatherAgent]):
        output = await client.execute_workflow(
            SdkWeatherAgent.run, "Weather in Paris and Rome?", id=wid, task_queue=task_queue
        )
    assert output == "Sunny."
    states, seen = TaskStates(), []
    for event in await task_events(nats_url, workflow_exec_id=wid):
        task = states.apply(event)
        seen.append((task.attempt, task.status, copy.deepcopy(task.state)))
    base = ChatTurnState().model_dump(mode="json")
    named = {**base, "model": "scripted"}
    checking = {**named, "content": "Checking."}
    usage = {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28}
    call = {"name": "weather", "result": {"status": "pending"}}
    a = {"index": 0, "toolCallId": "call_a", **call}
    b = {"index": 1, "toolCallId": "call_b", **call}
    paris, rome = {**a, "arguments": '{"city": "Paris"}'}, {**b, "arguments": '{"city": "Rome"}'}
    first = [base, named, {**named, "content": "Check"}, checking]
    called = {**checking, "tool_calls": [paris, rome]}
    ended = {**called, "finish_reason": "tool_calls", "usage": usage}
    answer = {**named, "content": "Sunny."}
    answered = {**answer, "finish_reason": "stop", "usage": usage}
    assert seen == [
        *[(1, "running", state) for state in first],
        (1, "failed", checking),
        *[(2, "running", state) for state in first],
        (2, "running", {**checking, "tool_calls": [{**a, "arguments": ""}]}),
        (2, "running", {**checking, "tool_calls": [{**a, "arguments": '{"city": '}]}),
        (2, "running", {**checking, "tool_calls": [paris]}),
        (2, "running", {**checking, "tool_calls": [paris, {**b, "arguments": ""}]}),
        (2, "running", called),
        (2, "running", ended),
        (2, "completed", ended),
        (1, "running", base),
        (1, "running", named),
        (1, "running", answer),
        (1, "running", answered),
        (1, "completed", answered),
    ]


async def test_the_sdk_example_streams_its_turns(temporal_address, nats_url, task_queue):
    """The example's plugin and workflow: two chat_turn tasks, the tool call, the answer."""
    from examples.agents_sdk_stream import SdkAgentWorkflow, agents_plugin

    provider = ScriptedProvider()
    provider.model.breaks, provider.model.tool = 0, "get_weather"
    plugins = [MistralWorkflowsPlugin(nats_url=nats_url, max_delay=0), agents_plugin(provider)]
    client = await Client.connect(temporal_address, plugins=plugins)
    wid = unique("sdk-example")
    async with Worker(client, task_queue=task_queue, workflows=[SdkAgentWorkflow]):
        output = await client.execute_workflow(
            SdkAgentWorkflow.run, "Weather?", id=wid, task_queue=task_queue
        )
    assert output == "Sunny."
    turns = [
        ChatTurnState.model_validate(t.state)
        for t in rebuilt_tasks(await task_events(nats_url, workflow_exec_id=wid))
    ]
    assert [(t.content, [c.name for c in t.tool_calls], t.finish_reason) for t in turns] == [
        ("Checking.", ["get_weather", "get_weather"], "tool_calls"),
        ("Sunny.", [], "stop"),
    ]


def rebuilt_tasks(events):
    states = TaskStates()
    for event in events:
        states.apply(event)
    return list(states)
