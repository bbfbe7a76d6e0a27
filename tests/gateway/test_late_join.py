"""Late join on the stream routes: each task's latest snapshot, then newer events, as
`subscribe(late_join=True)` gives them."""

from __future__ import annotations

import orjson

from mistral_workflows import StreamEvent, subscribe
from mistral_workflows.core.events import EventType
from tests.gateway import live_workflows
from tests.gateway.gateway_support import chat_worker, envelopes, ids_of, raw_sse, start_chat
from tests.support import collect, plugged_client, rebuilt, running_worker, unique

STREAM = "/v1/workflows/events/stream"


async def test_late_join_of_a_finished_run_gives_its_snapshots(
    gateway, nats_url, temporal_address, task_queue
):
    """A late joiner of a finished run gets what subscribe(late_join=True) gives, snapshots
    without an `id:`; without late_join it gets the whole history (negative control); with a
    Last-Event-ID it resumes after that id instead."""
    workflow_id = unique("gw-late")
    async with chat_worker(temporal_address, nats_url, task_queue) as temporal:
        await (await start_chat(temporal, task_queue, workflow_id)).result()
    url, base = gateway.url + STREAM, {"workflow_exec_id": workflow_id}
    blocks = await raw_sse(url, {**base, "late_join": "true"})
    joining = subscribe(nats_url, workflow_exec_id=workflow_id, late_join=True, idle_timeout=1)
    expected = [orjson.loads(e.model_dump_json()) async for e in joining]
    assert expected and all(e["metadata"]["snapshot"] for e in expected)
    assert envelopes(blocks) == expected
    assert ids_of(blocks) == []
    history = [e.broker_sequence for e in await collect(nats_url, workflow_exec_id=workflow_id)]
    everything = await raw_sse(url, {**base, "late_join": "false"})
    assert ids_of(everything) == history and len(history) > len(expected)
    resumed = await raw_sse(url, {**base, "late_join": "1"}, {"Last-Event-ID": str(history[-3])})
    assert ids_of(resumed) == history[-2:]


async def test_late_joiner_of_a_running_tree_ends_with_its_state(
    gateway, nats_url, temporal_address, task_queue
):
    """Joining a streaming run midway with late_join, and reading until it ends, rebuilds
    the same task states as its whole history."""
    workflow_id = unique("gw-late-run")
    client = await plugged_client(temporal_address, nats_url)
    activities = [live_workflows.write_reply]
    async with running_worker(client, task_queue, [live_workflows.LiveChild], activities):
        handle = await client.start_workflow(
            live_workflows.LiveChild.run, 0.15, id=workflow_id, task_queue=task_queue
        )
        await _tokens_streamed(nats_url, workflow_id, 4)
        params = {"workflow_exec_id": workflow_id, "late_join": "true"}
        blocks = await raw_sse(gateway.url + STREAM, params, idle=3)
        await handle.result()
    joined = [StreamEvent.model_validate(e) for e in envelopes(blocks)]
    assert joined[0].metadata.get("snapshot")
    assert joined[-1].data.event_type == EventType.WORKFLOW_EXECUTION_COMPLETED
    history = await collect(nats_url, workflow_exec_id=workflow_id)
    assert len(joined) < len(history)  # It did not start from the beginning.
    assert [(t.task_id, t.state, t.status) for t in rebuilt(joined)] == [
        (t.task_id, t.state, t.status) for t in rebuilt(history)
    ]


async def _tokens_streamed(nats_url: str, workflow_id: str, n: int) -> None:
    """Return once the run's task has streamed `n` updates."""
    updates = 0
    events = subscribe(nats_url, workflow_exec_id=workflow_id)
    async for event in events:
        updates += event.data.event_type == EventType.CUSTOM_TASK_IN_PROGRESS
        if updates == n:
            break
    await events.aclose()


async def test_late_join_with_start_seq_is_refused(gateway):
    """late_join and start_seq together are a 422 naming late_join."""
    import httpx2 as httpx

    params = {"workflow_exec_id": "x", "late_join": "true", "start_seq": "3"}
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(gateway.url + STREAM, params=params)
    assert response.status_code == 422
    assert response.json()["reason"].startswith("late_join")
