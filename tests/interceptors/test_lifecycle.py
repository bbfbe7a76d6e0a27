"""The scenario suite: exact lifecycle sequences per run, lineage, no duplicates, replay."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.worker import Replayer

from mistral_workflows import MistralWorkflowsPlugin, StreamEvent, subscribe
from mistral_workflows.core.emitter import Emitter
from mistral_workflows.core.encoding import MSG_ID
from mistral_workflows.core.events import EventType
from mistral_workflows.dev import free_port
from tests.interceptors import scenarios as s
from tests.support import collect, official_models, plugged_client, rebuilt, running_worker, unique

WORKFLOWS = [
    s.ParentOfFlaky,
    s.ChildWithFlakyActivity,
    s.CancelsMidStream,
    s.TimesOut,
    s.ContinuesTwice,
    s.PlanInWorkflow,
]
ACTIVITIES = [s.flaky_stream, s.long_stream, s.too_slow, s.step]


async def scenario(
    temporal_address: str, nats_url: str, task_queue: str, workflow: type, *args: Any
) -> tuple[WorkflowHandle[Any, Any], Any, list[StreamEvent]]:
    client = await plugged_client(temporal_address, nats_url)
    wid = unique(workflow.__name__)
    async with running_worker(client, task_queue, WORKFLOWS, ACTIVITIES):
        handle = await client.start_workflow(
            workflow.__name__, args=list(args), id=wid, task_queue=task_queue
        )
        result = await handle.result()
    events = await collect(nats_url, root_workflow_exec_id=wid)
    assert len(await official_models(nats_url, root_workflow_exec_id=wid)) == len(events)
    return handle, result, events


def runs(events: list[StreamEvent]) -> dict[tuple[str, str], list[str]]:
    """Event types per (workflow exec id, run id), in stream order."""
    out: dict[tuple[str, str], list[str]] = {}
    for e in events:
        out.setdefault((e.data.workflow_exec_id, e.data.workflow_run_id), []).append(
            e.data.event_type
        )
    return out


def no_duplicates(events: list[StreamEvent]) -> None:
    ids = Counter(e.data.event_id for e in events)
    assert [i for i, n in ids.items() if n > 1] == []


async def replays_without_nats(handle: WorkflowHandle[Any, Any]) -> None:
    dead = MistralWorkflowsPlugin(nats_url=f"nats://127.0.0.1:{free_port()}")
    replayer = Replayer(workflows=[*WORKFLOWS, s.FixedFlaky], plugins=[dead])
    history = await handle.fetch_history()
    result = await asyncio.wait_for(replayer.replay_workflow(history), 30)
    assert result.replay_failure is None


async def test_child_activity_fails_twice_then_succeeds(temporal_address, nats_url, task_queue):
    """Parent -> child -> activity: two RETRYING attempts, then success; lineage is right."""
    handle, result, events = await scenario(temporal_address, nats_url, task_queue, s.ParentOfFlaky)
    assert result == "ok"
    parent = handle.id
    child = f"{parent}-child"
    attempt = [
        EventType.ACTIVITY_TASK_STARTED,
        EventType.CUSTOM_TASK_STARTED,
        EventType.CUSTOM_TASK_IN_PROGRESS,
        EventType.CUSTOM_TASK_FAILED,
        EventType.ACTIVITY_TASK_RETRYING,
    ]
    by_run = runs(events)
    assert len(by_run) == 2
    assert by_run[next(k for k in by_run if k[0] == parent)] == [
        EventType.WORKFLOW_EXECUTION_STARTED,
        EventType.WORKFLOW_EXECUTION_COMPLETED,
    ]
    assert by_run[next(k for k in by_run if k[0] == child)] == [
        EventType.WORKFLOW_EXECUTION_STARTED,
        *attempt,
        *attempt,
        EventType.ACTIVITY_TASK_STARTED,
        EventType.CUSTOM_TASK_STARTED,
        EventType.CUSTOM_TASK_IN_PROGRESS,
        EventType.CUSTOM_TASK_COMPLETED,
        EventType.ACTIVITY_TASK_COMPLETED,
        EventType.WORKFLOW_EXECUTION_COMPLETED,
    ]
    for e in events:
        assert e.data.root_workflow_exec_id == parent
        expected_parent = parent if e.data.workflow_exec_id == child else None
        assert e.data.parent_workflow_exec_id == expected_parent
    attempts = [
        e.data.attributes.attempt
        for e in events
        if e.data.event_type == EventType.ACTIVITY_TASK_STARTED
    ]
    assert attempts == [1, 2, 3]
    (task,) = rebuilt(events)
    assert (task.attempt, task.state) == (3, {"tokens": ["attempt-3"]})
    no_duplicates(events)
    await replays_without_nats(handle)


async def test_activity_cancelled_mid_stream(temporal_address, nats_url, task_queue):
    """A cancelled activity ends its task with CANCELED and itself with a final FAILED."""
    handle, result, events = await scenario(
        temporal_address, nats_url, task_queue, s.CancelsMidStream
    )
    assert result == "cancelled"
    (seq,) = runs(events).values()
    progress = seq.count(EventType.CUSTOM_TASK_IN_PROGRESS)
    assert progress > 3
    ending = [
        EventType.CUSTOM_TASK_CANCELED,
        EventType.ACTIVITY_TASK_FAILED,
        EventType.WORKFLOW_EXECUTION_COMPLETED,
    ]
    assert seq == [
        EventType.WORKFLOW_EXECUTION_STARTED,
        EventType.ACTIVITY_TASK_STARTED,
        EventType.CUSTOM_TASK_STARTED,
        *([EventType.CUSTOM_TASK_IN_PROGRESS] * progress),
        *ending,
    ]
    no_duplicates(events)
    await replays_without_nats(handle)


async def test_activity_hits_start_to_close_timeout(temporal_address, nats_url, task_queue):
    """Each timed-out attempt ends with TIMED_OUT and RETRYING, the last with FAILED."""
    handle, result, events = await scenario(temporal_address, nats_url, task_queue, s.TimesOut)
    assert "StartToClose" in result
    await asyncio.sleep(0.5)  # the last attempt reports at its deadline, as the server does
    events = await collect(nats_url, root_workflow_exec_id=handle.id)
    (seq,) = runs(events).values()
    attempt = [
        EventType.ACTIVITY_TASK_STARTED,
        EventType.CUSTOM_TASK_STARTED,
        EventType.CUSTOM_TASK_IN_PROGRESS,
        EventType.CUSTOM_TASK_TIMED_OUT,
    ]
    assert [
        t
        for t in seq
        if t not in (EventType.WORKFLOW_EXECUTION_STARTED, EventType.WORKFLOW_EXECUTION_COMPLETED)
    ] == [
        *attempt,
        EventType.ACTIVITY_TASK_RETRYING,
        *attempt,
        EventType.ACTIVITY_TASK_FAILED,
    ]
    assert (
        seq[0] == EventType.WORKFLOW_EXECUTION_STARTED
        and seq.count(EventType.WORKFLOW_EXECUTION_COMPLETED) == 1
    )
    failure = next(
        e for e in events if e.data.event_type == EventType.ACTIVITY_TASK_FAILED
    ).data.attributes.failure
    assert failure.message == "activity START_TO_CLOSE timeout"
    no_duplicates(events)
    await replays_without_nats(handle)


async def test_continue_as_new_twice(temporal_address, nats_url, task_queue):
    """Three runs: each continued run ends with CONTINUED_AS_NEW naming the next run."""
    handle, result, events = await scenario(
        temporal_address, nats_url, task_queue, s.ContinuesTwice, 2
    )
    assert result == 0
    by_run = runs(events)
    middle = [
        EventType.WORKFLOW_EXECUTION_STARTED,
        EventType.ACTIVITY_TASK_STARTED,
        EventType.ACTIVITY_TASK_COMPLETED,
        EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
    ]
    assert list(by_run.values()) == [
        middle,
        middle,
        [
            EventType.WORKFLOW_EXECUTION_STARTED,
            EventType.ACTIVITY_TASK_STARTED,
            EventType.ACTIVITY_TASK_COMPLETED,
            EventType.WORKFLOW_EXECUTION_COMPLETED,
        ],
    ]
    run_ids = [run for _, run in by_run]
    continued = [
        e.data.attributes.new_execution_run_id
        for e in events
        if e.data.event_type == EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    ]
    assert continued == run_ids[1:]
    assert {e.data.root_workflow_exec_id for e in events} == {handle.id}
    no_duplicates(events)
    await replays_without_nats(handle)


async def test_workflow_task_failure_then_fix(temporal_address, nats_url, task_queue):
    """A bug in workflow code, fixed by a new worker: one STARTED, no FAILED, one COMPLETED."""
    client = await plugged_client(temporal_address, nats_url)
    wid = unique("flaky")
    async with running_worker(client, task_queue, [s.BuggyFlaky], ACTIVITIES):
        handle = await client.start_workflow("Flaky", id=wid, task_queue=task_queue)
        await wait_for_task_failures(handle, 2)
    async with running_worker(client, task_queue, [s.FixedFlaky], ACTIVITIES):
        assert await handle.result() == "fixed"
    events = await collect(nats_url, workflow_exec_id=wid)
    assert [e.data.event_type for e in events] == [
        EventType.WORKFLOW_EXECUTION_STARTED,
        EventType.ACTIVITY_TASK_STARTED,
        EventType.ACTIVITY_TASK_COMPLETED,
        EventType.WORKFLOW_EXECUTION_COMPLETED,
    ]
    no_duplicates(events)
    await replays_without_nats(handle)


def send_twice(monkeypatch, msg_id_suffix: str) -> None:
    """Make every event go out twice, as a retried publish or a re-run workflow task would."""
    original = Emitter.send

    async def twice(self, subject, payload, headers):
        await original(self, subject, payload, headers)
        again = {**headers, MSG_ID: headers[MSG_ID] + msg_id_suffix}
        await original(self, subject, payload, again)

    monkeypatch.setattr(Emitter, "send", twice)


async def test_events_sent_twice_are_stored_once(
    temporal_address, nats_url, task_queue, monkeypatch
):
    """Every event, lifecycle and task, sent twice with its id, is stored once."""
    send_twice(monkeypatch, "")
    _, _, events = await scenario(temporal_address, nats_url, task_queue, s.PlanInWorkflow)
    assert len(events) == 10
    no_duplicates(events)


async def test_negative_control_without_message_ids_duplicates_appear(
    temporal_address, nats_url, task_queue, monkeypatch
):
    """With a different message id the copies are stored, and the check above sees them."""
    send_twice(monkeypatch, "-copy")
    _, _, events = await scenario(temporal_address, nats_url, task_queue, s.PlanInWorkflow)
    assert len(events) == 20
    with pytest.raises(AssertionError):
        no_duplicates(events)


async def wait_for_task_failures(handle: WorkflowHandle[Any, Any], n: int) -> None:
    for _ in range(200):
        history = await handle.fetch_history()
        failed = [e for e in history.events if e.HasField("workflow_task_failed_event_attributes")]
        if len(failed) >= n:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the workflow task never failed")


async def test_workflow_level_task_spans_two_activities(temporal_address, nats_url, task_queue):
    """A Task in workflow code streams around its activities, replay-safe."""
    handle, result, events = await scenario(
        temporal_address, nats_url, task_queue, s.PlanInWorkflow
    )
    assert result == {"done": ["search", "summarise"]}
    (seq,) = runs(events).values()
    assert seq == [
        EventType.WORKFLOW_EXECUTION_STARTED,
        EventType.CUSTOM_TASK_STARTED,
        EventType.ACTIVITY_TASK_STARTED,
        EventType.ACTIVITY_TASK_COMPLETED,
        EventType.CUSTOM_TASK_IN_PROGRESS,
        EventType.ACTIVITY_TASK_STARTED,
        EventType.ACTIVITY_TASK_COMPLETED,
        EventType.CUSTOM_TASK_IN_PROGRESS,
        EventType.CUSTOM_TASK_COMPLETED,
        EventType.WORKFLOW_EXECUTION_COMPLETED,
    ]
    (plan,) = rebuilt(events)
    assert plan.state == result and plan.status == "completed"
    assert all(e.activity_context is None for e in events if e.stream == "plan")
    no_duplicates(events)
    await replays_without_nats(handle)


async def test_until_complete_on_the_root_ends_after_the_root(
    temporal_address, nats_url, task_queue
):
    """until_complete on a root id yields the whole tree and stops after the root ends."""
    client = await plugged_client(temporal_address, nats_url)
    root = unique("tree")
    seen: list[StreamEvent] = []

    async def follow() -> None:
        async for event in subscribe(nats_url, root_workflow_exec_id=root, until_complete=True):
            seen.append(event)

    follower = asyncio.create_task(follow())
    async with running_worker(client, task_queue, WORKFLOWS, ACTIVITIES):
        await client.execute_workflow("ParentOfFlaky", id=root, task_queue=task_queue)
        await asyncio.wait_for(follower, 20)
    assert (
        seen[-1].data.event_type == EventType.WORKFLOW_EXECUTION_COMPLETED
        and seen[-1].data.workflow_exec_id == root
    )
    assert seen == await collect(nats_url, root_workflow_exec_id=root)
