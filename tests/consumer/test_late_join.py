"""Late joiners: the current state of each task from its snapshot, then only newer events."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import pytest

import mistral_workflows as workflows
from mistral_workflows import StreamEvent, subscribe
from mistral_workflows.consumer import _subscribe
from mistral_workflows.consumer._snapshots import Snapshots, backfill, read_snapshots
from mistral_workflows.core import subjects
from mistral_workflows.core.filter import EventFilter
from mistral_workflows.core.task import Task
from tests.support import collect, plugged_client, rebuilt, running_worker, task_events, unique
from tests.workflows import Call, RunActivity

PAD = "x" * 1000  # a few kB of patches make a snapshot due mid-task
AFTER = 20  # updates after the joiner joined
snapshot_stored = asyncio.Event()
paused = asyncio.Event()
go_on = asyncio.Event()


@workflows.activity()
async def pausing_stream() -> dict[str, str]:
    """Streams until the test saw a mid-task snapshot stored, pauses, then streams AFTER more
    updates (one event each: it yields after each update)."""
    async with Task(type="token-stream", state={"text": ""}) as task:
        i = 0
        while not snapshot_stored.is_set():
            await task.update_state({"text": task.state["text"] + f" {i}{PAD}"})
            await asyncio.sleep(0.001)
            i += 1
        paused.set()
        await go_on.wait()
        for j in range(AFTER):
            await task.update_state({"text": task.state["text"] + f" after{j}"})
            await asyncio.sleep(0)
    return task.state


async def stored_snapshot(nats_url: str, wid: str) -> StreamEvent | None:
    """The latest snapshot of the workflow's task, once one past its start is stored."""
    nc = await nats.connect(nats_url)
    try:
        found = await read_snapshots(
            nc,
            subjects.DEFAULT_STREAM_NAME,
            subjects.DEFAULT_PREFIX,
            EventFilter(workflow_exec_id=wid),
        )
    finally:
        await nc.close()
    for snapshot in found.events:
        if snapshot.data.attributes.task_sequence > 0:
            return snapshot
    return None


@pytest.mark.parametrize("snapshot_read_late", [False, True])
async def test_late_joiner_gets_current_state_then_newer_patches(
    temporal_address, nats_url, task_queue, monkeypatch, snapshot_read_late
):
    """A consumer that starts mid-task gets a snapshot, then only later patches, and ends
    with the same state as the activity (also when the snapshot was not there yet when it
    joined: it is then fetched with the events in between)."""
    joined = asyncio.Event()

    async def joining(*args: Any) -> Snapshots:
        found = Snapshots([]) if snapshot_read_late else await read_snapshots(*args)
        joined.set()  # where the joiner starts reading is fixed now
        return found

    monkeypatch.setattr(_subscribe, "read_snapshots", joining)
    for event in (snapshot_stored, paused, go_on):
        event.clear()
    client = await plugged_client(temporal_address, nats_url)
    wid = unique("late")
    async with running_worker(client, task_queue, [RunActivity], [pausing_stream]):
        handle = await client.start_workflow(
            RunActivity.run, Call("pausing_stream"), id=wid, task_queue=task_queue
        )
        # The producer stores a snapshot after its event (pytest-timeout bounds this wait).
        while await stored_snapshot(nats_url, wid) is None:  # noqa: ASYNC110 - polling NATS
            await asyncio.sleep(0.01)
        snapshot_stored.set()
        await asyncio.wait_for(paused.wait(), 30)
        seen: list[StreamEvent] = []

        async def join() -> None:
            async for event in subscribe(
                nats_url, workflow_exec_id=wid, late_join=True, until_complete=True
            ):
                seen.append(event)

        joiner = asyncio.create_task(join())
        await asyncio.wait_for(joined.wait(), 30)
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
        subjects.DEFAULT_STREAM_NAME,
        subject=EventFilter(workflow_exec_id=wid).subject(subjects.DEFAULT_PREFIX),
    )
    await nc.close()
    assert await task_events(nats_url, workflow_exec_id=wid) == []  # negative control
    joined = await collect(nats_url, workflow_exec_id=wid, late_join=True)
    (task,) = rebuilt(joined)
    assert task.state == result and task.status == "completed"


async def test_backfill_without_a_snapshot_reads_the_task_from_its_start(
    temporal_address, nats_url, task_queue
):
    """A worker stores a task's snapshot after its event, possibly after the next one: a
    joiner that meets a task with no snapshot yet gets the task's earlier events instead."""
    client = await plugged_client(temporal_address, nats_url)
    wid = unique("unsnapshotted")
    async with running_worker(client, task_queue, [RunActivity], [short_stream]):
        result = await client.execute_workflow(
            RunActivity.run, Call("short_stream"), id=wid, task_queue=task_queue
        )
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().purge_stream(
            subjects.snapshot_stream(subjects.DEFAULT_STREAM_NAME),
            subject=EventFilter(workflow_exec_id=wid).subject(
                subjects.snapshot_prefix(subjects.DEFAULT_PREFIX)
            ),
        )
        events = await task_events(nats_url, workflow_exec_id=wid)
        met = events[-2]  # the last update: the first event the joiner meets
        stored = await nc.jetstream().get_msg(subjects.DEFAULT_STREAM_NAME, met.broker_sequence)
        missed = await backfill(
            nc, subjects.DEFAULT_STREAM_NAME, subjects.DEFAULT_PREFIX, stored.subject, met
        )
    finally:
        await nc.close()
    assert [e.data.event_id for e in missed] == [e.data.event_id for e in events[:-2]]
    (task,) = rebuilt([*missed, *events[-2:]])
    assert task.state == result and task.status == "completed"
    # Negative control: without what came before, the joiner cannot rebuild the task.
    partial = rebuilt(events[-2:])
    assert all(t.state != result or t.status != "completed" for t in partial)
