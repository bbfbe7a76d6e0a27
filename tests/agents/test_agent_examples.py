"""The agent examples (docs/agents.md) run end to end: chat streams against a local
server, the durable agent on a worker, and what a consumer prints."""

from __future__ import annotations

from pydantic_ai.durable_exec.temporal import AgentPlugin, PydanticAIPlugin
from temporalio.client import Client
from temporalio.worker import Worker

from examples import agent_streams
from mistral_workflows import MistralWorkflowsPlugin
from tests.agents.scripted import chunk, chunk_server, tool_delta
from tests.agents.workflows import ModelCall
from tests.support import plugged_client, rebuilt, running_worker, task_events, unique

SCRIPT = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Let me check."}),
    chunk(tool_delta(0, "call_1", "get_weather", '{"city": ')),
    chunk(tool_delta(0, args='"Paris"}')),
    chunk({}, finish="tool_calls"),
]


async def test_the_chat_examples_stream_a_turn(temporal_address, nats_url, task_queue):
    """Both chat activities stream the same turn and return the assistant message."""
    client = await plugged_client(temporal_address, nats_url, max_delay=0)
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    for activity, path in [(agent_streams.openai_chat, "/v1"), (agent_streams.mistral_chat, "")]:
        wid = unique("example")
        async with (
            chunk_server(nats_url, wid, [SCRIPT]) as server,
            running_worker(client, task_queue, [ModelCall], [activity]),
        ):
            args = [activity.__name__, [server.url + path, messages], 1]
            message = await client.execute_workflow(
                ModelCall.run, args=args, id=wid, task_queue=task_queue
            )
        call = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
        assert message["tool_calls"] == [{"id": "call_1", "type": "function", "function": call}]
        (task,) = rebuilt(await task_events(nats_url, workflow_exec_id=wid))
        assert (task.status, task.state["content"], task.state["finish_reason"]) == (
            "completed",
            "Let me check.",
            "tool_calls",
        )


async def test_the_durable_agent_example_shows_turns_and_tools(
    temporal_address, nats_url, task_queue, capsys
):
    """The durable agent's model turns and tool call print as a consumer sees them."""
    plugins = [MistralWorkflowsPlugin(nats_url=nats_url, max_delay=0), PydanticAIPlugin()]
    client = await Client.connect(temporal_address, plugins=plugins)
    wid = unique("weather")
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[agent_streams.WeatherAgentWorkflow],
        plugins=[AgentPlugin(agent_streams.weather_agent)],
    ):
        output = await client.execute_workflow(
            agent_streams.WeatherAgentWorkflow.run, "Paris?", id=wid, task_queue=task_queue
        )
    assert output == "Sunny in Paris."
    lines = await agent_streams.show_agent(nats_url, wid)
    assert lines == [
        """model: '' calls: [get_weather({"city":"a"})]""",
        "tool get_weather: status='running'",
        "tool get_weather: status='success' value='Sunny in a'",
        "model: 'Sunny in Paris.' calls: []",
    ]
    assert capsys.readouterr().out.splitlines() == lines
