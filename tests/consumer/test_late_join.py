"""Late joiners: the current state of each task from its snapshot, then only newer events."""

from __future__ import annotations

import asyncio

import nats
import pytest

import mistral_workflows as workflows
from mistral_workflows import StreamEvent, subscribe
from mistral_workflows.consumer import _subscribe
from mistral_workflows.consumer._snapshots import Snapshots
from mistral_workflows.core import subjects
from mistral_workflows.core.task import Task
from tests.support import collect, plugged_client, rebuilt, running_worker, task_events, unique
from tests.workflows import Call, RunActivity

TOKENS = 400
halfway = asyncio.Event()
go_on = asyncio.Event()


@workflows.activity()
async def pausing_stream(n: int) -> dict[str, str]:
    async with Task(type="token-stream", state={"text": ""}) as task:
        for i in range(n):
            await task.update_state({"text": task.state["text"] + f" token{i}"})
            if i == n // 2:
                halfway.set()
                await go_on.wait()
    return task.state


@pytest.mark.parametrize("snapshot_read_late", [False, True])
async def test_late_joiner_gets_current_state_then_newer_patches(
    temporal_address, nats_url, task_queue, monkeypatch, snapshot_read_late
):
    """A consumer that starts mid-task gets a snapshot, then only later patches, and ends
    with the same state as the activity (also when the snapshot was not there yet when it
    joined: it is then fetched with the events in between)."""
    if snapshot_read_late:

        async def none_yet(*args: object) -> Snapshots:
            return Snapshots([])

        monkeypatch.setattr(_subscribe, "read_snapshots", none_yet)
    halfway.clear()
    go_on.clear()
    client = await plugged_client(temporal_address, nats_url)
    wid = unique("late")
    async with running_worker(client, task_queue, [RunActivity], [pausing_stream]):
        handle = await client.start_workflow(
            RunActivity.run, Call("pausing_stream", [TOKENS]), id=wid, task_queue=task_queue
        )
        await asyncio.wait_for(halfway.wait(), 30)
        await asyncio.sleep(0.3)  # let the snapshots of the first half be written
        seen: list[StreamEvent] = []

        async def join() -> None:
            async for event in subscribe(
                nats_url, workflow_exec_id=wid, late_join=True, until_complete=True
            ):
                seen.append(event)

        joiner = asyncio.create_task(join())
        await asyncio.sleep(0.3)
        go_on.set()
        result = await handle.result()
        await asyncio.wait_for(joiner, 20)
    custom = [e for e in seen if e.stream == "token-stream"]
    snapshot = custom[0]
    assert snapshot.metadata.get("snapshot") is True and snapshot.broker_sequence is None
    base = snapshot.data.attributes.task_sequence
    assert base > 0
    later = [e.data.attributes.task_sequence for e in custom[1:]]
    assert later == list(range(base + 1, base + 1 + len(later)))  # no repeats, no holes
    assert len(later) < TOKENS
    (task,) = rebuilt(seen)
    assert task.state == result and task.status == "completed"


@workflows.activity()
async def short_stream() -> dict[str, list[str]]:
    async with Task(type="token-stream", state={"tokens": []}) as task:
        for token in ["a", "b", "c"]:
            await task.update_state({"tokens": [*task.state["tokens"], token]})
    return task.state


async def test_late_joiner_after_events_expired(temporal_address, nats_url, task_queue):
    """When a task's events are gone from the stream, its last snapshot still gives its state."""
    client = await plugged_client(temporal_address, nats_url)
    wid = unique("expired")
    async with running_worker(client, task_queue, [RunActivity], [short_stream]):
        result = await client.execute_workflow(
            RunActivity.run, Call("short_stream"), id=wid, task_queue=task_queue
        )
    nc = await nats.connect(nats_url)
    await nc.jetstream().purge_stream(
        "WORKFLOW_EVENTS", subject=subjects.filter_subject("workflows", exec_id=wid)
    )
    await nc.close()
    assert await task_events(nats_url, workflow_exec_id=wid) == []  # negative control
    joined = await collect(nats_url, workflow_exec_id=wid, late_join=True)
    (task,) = rebuilt(joined)
    assert task.state == result and task.status == "completed"
