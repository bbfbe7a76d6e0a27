"""The official Mistral client reads our events through the gateway and parses each one."""

from __future__ import annotations

import asyncio
import gc

from mistralai.client.models import StreamEventSsePayload

from examples import fake_llm, gateway_client
from mistral_workflows.core.events import EventType
from tests.gateway.gateway_support import (
    chat_worker,
    completed,
    read_until,
    sequences,
    start_chat,
)
from tests.support import collect, official_name, unique


async def test_official_client_streams_a_running_workflow(
    gateway, nats_url, temporal_address, task_queue
):
    """get_stream_events_async reads a running workflow's events in order, each one typed,
    the same events as subscribe() with the same sequences, and the text is complete."""
    workflow_id = unique("gw-official")
    async with (
        gateway.client() as client,
        chat_worker(temporal_address, nats_url, task_queue) as temporal,
    ):
        # Opened before the workflow starts, so the events arrive live.
        stream = await client.workflows.events.get_stream_events_async(workflow_exec_id=workflow_id)
        reading = asyncio.create_task(read_until(stream, completed(workflow_id), idle=30))
        handle = await start_chat(temporal, task_queue, workflow_id)
        await handle.result()
        messages = await asyncio.wait_for(reading, 30)
    assert {m.event for m in messages} == {"workflow.event"}
    for message in messages:
        assert isinstance(message.data, StreamEventSsePayload)
        assert type(message.data.data).__name__ == official_name(message.data.data.event_type)
        assert message.id == str(message.data.broker_sequence)
    assert messages[0].retry is not None  # The reconnection hint comes with the first one.
    direct = await collect(nats_url, workflow_exec_id=workflow_id)
    assert sequences(messages) == [e.broker_sequence for e in direct]
    final = next(
        m.data.data for m in messages if m.data.data.event_type == EventType.CUSTOM_TASK_COMPLETED
    )
    assert "".join(final.attributes.payload.value["tokens"]) == fake_llm.REPLY


async def test_official_client_streams_one_execution(
    gateway, nats_url, temporal_address, task_queue
):
    """executions.stream_async reads one execution, and its last_event_id resumes it."""
    workflow_id = unique("gw-exec")
    async with chat_worker(temporal_address, nats_url, task_queue) as temporal:
        await (await start_chat(temporal, task_queue, workflow_id)).result()
    direct = [e.broker_sequence for e in await collect(nats_url, workflow_exec_id=workflow_id)]
    middle = direct[len(direct) // 2]
    async with gateway.client() as client:
        stream = await client.workflows.executions.stream_async(execution_id=workflow_id)
        messages = await read_until(stream, completed(workflow_id))
        stream = await client.workflows.executions.stream_async(
            execution_id=workflow_id, last_event_id=str(middle), event_source="LIVE"
        )
        resumed = await read_until(stream, completed(workflow_id))
    assert sequences(messages) == direct
    assert sequences(resumed) == [s for s in direct if s > middle]


async def test_official_client_lists_stored_events(gateway, nats_url, temporal_address, task_queue):
    """get_workflow_events_async pages through the stored events with its cursor."""
    workflow_id = unique("gw-list")
    async with chat_worker(temporal_address, nats_url, task_queue) as temporal:
        await (await start_chat(temporal, task_queue, workflow_id)).result()
    direct = await collect(nats_url, workflow_exec_id=workflow_id)
    listed, cursor, pages = [], None, 0
    async with gateway.client() as client:
        while True:
            page = await client.workflows.events.get_workflow_events_async(
                workflow_exec_id=workflow_id, limit=7, cursor=cursor
            )
            pages += 1
            listed += page.events
            cursor = page.next_cursor
            if not cursor:
                break
    assert pages == -(-len(direct) // 7)
    assert [e.event_id for e in listed] == [e.data.event_id for e in direct]
    assert [type(e).__name__ for e in listed] == [official_name(e.data.event_type) for e in direct]


async def test_gateway_client_example_prints_the_reply(
    gateway, nats_url, temporal_address, task_queue, capsys
):
    """examples/gateway_client.py follows a running workflow and prints the whole reply."""
    workflow_id = unique("gw-example")
    async with chat_worker(temporal_address, nats_url, task_queue) as temporal:
        following = asyncio.create_task(gateway_client.print_reply(gateway.url, workflow_id))
        await (await start_chat(temporal, task_queue, workflow_id)).result()
        text = await asyncio.wait_for(following, 30)
    # The SDK's client closes its HTTP client from a finalizer: let it run now, while the
    # event loop can still run that close.
    gc.collect()
    await asyncio.sleep(0.1)
    assert text == fake_llm.REPLY
    assert fake_llm.REPLY in capsys.readouterr().out
