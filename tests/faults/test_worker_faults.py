"""Workers that die, shut down, time out or are cancelled mid-task, against real servers.

Whatever happens to an attempt, consumers must end with the final attempt's state and see
every stored event once, and every attempt that can still report must end with the right
event. A worker killed with SIGKILL cannot report: its attempt just stops.
"""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import timedelta
from typing import Any

import nats
import pytest
from temporalio.worker import Worker

from mistral_workflows import StreamEvent, TaskStates
from mistral_workflows.core import subjects
from mistral_workflows.core.encoding import MSG_ID
from mistral_workflows.core.events import EventType
from tests.faults.worker_process import (
    ACTIVITIES,
    LAST_STATES,
    Plan,
    RunPlan,
    attempt_of,
    check_attempt,
    duplicate_ids,
    kinds,
    task_sequences,
    tokens,
    wait_for_event,
    worker_process,
)
from tests.support import collect, plugged_client, rebuilt, running_worker, unique

COMPLETED = [EventType.CUSTOM_TASK_COMPLETED, EventType.ACTIVITY_TASK_COMPLETED]


def reached(attempt: int, sequence: int):
    """Whether an event is the given attempt's task event number `sequence` or later."""

    def check(event: StreamEvent) -> bool:
        number = getattr(event.data.attributes, "task_sequence", None)
        return attempt_of(event) == attempt and number is not None and number >= sequence

    return check


def attempt_ended(attempt: int):
    """Whether an event is the given attempt's ACTIVITY_TASK_* terminal event."""
    ends = (
        EventType.ACTIVITY_TASK_COMPLETED,
        EventType.ACTIVITY_TASK_RETRYING,
        EventType.ACTIVITY_TASK_FAILED,
    )
    return lambda e: attempt_of(e) == attempt and e.data.event_type in ends


async def cancel_mid_stream(
    temporal_address: str,
    nats_url: str,
    task_queue: str,
    activity: str,
    cancellation: str,
    workflows: list[type],
    activities: list[Any],
) -> tuple[list[StreamEvent], Any]:
    """Cancel the heartbeating `activity` streaming tokens (a `Plan`) with the given
    cancellation type once its task has sent 5 events, and check what every type gives:
    the task ends with CANCELED and the attempt with FAILED, with every update in; only
    WAIT_CANCELLATION_COMPLETED puts them before the workflow's end. Returns the run's
    events and the task's last state."""
    client = await plugged_client(temporal_address, nats_url)
    wid = unique("cancel")
    plan = Plan(activity, task_queue, [[10_000], 0.05], heartbeat=1)
    plan.cancellation = cancellation
    async with running_worker(client, task_queue, workflows, activities):
        handle = await client.start_workflow(RunPlan.run, plan, id=wid, task_queue=task_queue)
        await wait_for_event(nats_url, wid, reached(1, 5))
        await handle.signal(RunPlan.cancel)
        assert await handle.result() == "activity error: CancelledError"
        # With TRY_CANCEL and ABANDON the task's end may come after the workflow's.
        await wait_for_event(nats_url, wid, attempt_ended(1))
    events = await collect(nats_url, workflow_exec_id=wid)
    state = check_attempt(
        events, 1, [EventType.CUSTOM_TASK_CANCELED, EventType.ACTIVITY_TASK_FAILED]
    )
    assert state == LAST_STATES[(wid, 1)] and len(state["tokens"]) >= 5
    order = kinds(events)
    assert (
        order[0] == EventType.WORKFLOW_EXECUTION_STARTED
        and order.count(EventType.WORKFLOW_EXECUTION_COMPLETED) == 1
    )
    if cancellation == "WAIT_CANCELLATION_COMPLETED":
        assert order[-1] == EventType.WORKFLOW_EXECUTION_COMPLETED
    else:  # The activity learns of it later, and streams on meanwhile.
        assert order.index(EventType.WORKFLOW_EXECUTION_COMPLETED) < order.index(
            EventType.CUSTOM_TASK_CANCELED
        )
    canceled = next(
        e for e in events if e.data.event_type == EventType.CUSTOM_TASK_CANCELED
    ).data.attributes
    assert canceled.reason == "cancel requested"
    failed = next(
        e for e in events if e.data.event_type == EventType.ACTIVITY_TASK_FAILED
    ).data.attributes
    assert failed.failure.message == "activity cancelled"
    return events, state


async def shut_down_mid_stream(
    temporal_address: str, nats_url: str, task_queue: str, activity: str, activities: list[Any]
) -> list[StreamEvent]:
    """Shut the worker running `activity` (streaming tokens, a `Plan`) down mid-task, past
    its graceful timeout, then retry on a new worker; checks that the first attempt ends
    with FAILED and RETRYING, not CANCELED, and the retry completes. Returns the events."""
    client = await plugged_client(temporal_address, nats_url)
    wid, queue = unique("shutdown"), f"{task_queue}-activities"
    plan = Plan(activity, queue, [[10_000, 10], 0.05], heartbeat=1)
    async with running_worker(client, task_queue, [RunPlan]):
        worker = Worker(
            client,
            task_queue=queue,
            activities=activities,
            graceful_shutdown_timeout=timedelta(seconds=0.5),
        )
        running = asyncio.create_task(worker.run())
        handle = await client.start_workflow(RunPlan.run, plan, id=wid, task_queue=task_queue)
        await wait_for_event(nats_url, wid, reached(1, 5))
        await worker.shutdown()
        await running
        async with running_worker(client, queue, activities=activities):
            assert await handle.result() == "attempt 2"
    events = await collect(nats_url, workflow_exec_id=wid)
    assert (
        check_attempt(events, 1, [EventType.CUSTOM_TASK_FAILED, EventType.ACTIVITY_TASK_RETRYING])
        == LAST_STATES[(wid, 1)]
    )
    failed = next(
        e for e in events if e.data.event_type == EventType.CUSTOM_TASK_FAILED
    ).data.attributes
    assert failed.failure.message == (
        "the worker shut down during the task; Temporal will retry the activity"
    )
    retrying = next(
        e for e in events if e.data.event_type == EventType.ACTIVITY_TASK_RETRYING
    ).data.attributes
    assert retrying.failure.message == "the worker shut down during the attempt"
    assert check_attempt(events, 2, COMPLETED) == tokens(2, 10)
    workflow_ends(events)
    return events


def final(events: list[StreamEvent]) -> tuple[int, str, object]:
    """The attempt, status and state of the one task, as a consumer rebuilds them."""
    (task,) = rebuilt(events)
    return task.attempt, task.status, task.state


def workflow_ends(events: list[StreamEvent]) -> None:
    order = kinds(events)
    assert (
        order[0] == EventType.WORKFLOW_EXECUTION_STARTED
        and order[-1] == EventType.WORKFLOW_EXECUTION_COMPLETED
    )
    assert (
        order.count(EventType.WORKFLOW_EXECUTION_STARTED)
        == order.count(EventType.WORKFLOW_EXECUTION_COMPLETED)
        == 1
    )


# --- a worker killed with SIGKILL ----------------------------------------------------------


async def test_worker_killed_mid_stream(temporal_address, nats_url, task_queue, tmp_path):
    """SIGKILL of the worker process: attempt 1's events stay, with no end (nothing is left
    to send one); the retry on another worker streams in full and consumers end with it."""
    client = await plugged_client(temporal_address, nats_url)
    wid, queue = unique("killed"), f"{task_queue}-activities"
    plan = Plan("stream_tokens", queue, [[10_000, 20], 0.05], heartbeat=1.0)
    async with running_worker(client, task_queue, [RunPlan]):
        async with worker_process(temporal_address, nats_url, queue, tmp_path) as process:
            handle = await client.start_workflow(RunPlan.run, plan, id=wid, task_queue=task_queue)
            seen = await wait_for_event(nats_url, wid, reached(1, 8))
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        # The retry starts once the heartbeat timeout has passed, on this new worker.
        async with running_worker(client, queue, activities=ACTIVITIES):
            assert await handle.result() == "attempt 2"
    events = await collect(nats_url, workflow_exec_id=wid)
    assert {e.data.event_id for e in seen} <= {e.data.event_id for e in events}
    # No CUSTOM_TASK_* end and no ACTIVITY_TASK_RETRYING for attempt 1: its worker is gone.
    killed = check_attempt(events, 1, ending=[])
    streamed = len(killed["tokens"])
    assert streamed >= 8 and killed == tokens(1, streamed)
    assert check_attempt(events, 2, COMPLETED) == tokens(2, 20)
    workflow_ends(events)
    assert final(events) == (2, "completed", tokens(2, 20))
    assert duplicate_ids(events) == []


# --- start-to-close timeout: attempts overlap ---------------------------------------------


@pytest.fixture(scope="module")
async def overlap(temporal_address, nats_url) -> list[StreamEvent]:
    """Attempt 1 times out (start-to-close, no heartbeats) but ignores its cancellation and
    streams on while attempt 2 runs and completes; the events once both have ended."""
    client = await plugged_client(temporal_address, nats_url)
    wid, queue = unique("overlap"), unique("queue")
    plan = Plan("ignores_cancellation", queue, [[40, 5], 0.1], start_to_close=2, attempts=2)
    async with running_worker(client, queue, [RunPlan], ACTIVITIES):
        handle = await client.start_workflow(RunPlan.run, plan, id=wid, task_queue=queue)
        assert await handle.result() == "attempt 2"
        await wait_for_event(nats_url, wid, attempt_ended(1))
    return await collect(nats_url, workflow_exec_id=wid)


async def test_overlapping_attempts_consumers_follow_the_retry(overlap):
    """The late attempt's events interleave with the retry's; once the retry has started,
    consumers never show the late attempt's state again, and end with the retry's."""
    events = overlap
    wid = events[0].data.workflow_exec_id
    retry = [e.broker_sequence for e in events if attempt_of(e) == 2]
    late = [e.broker_sequence for e in events if attempt_of(e) == 1]
    assert any(retry[0] < seq < retry[-1] for seq in late)  # they did run at once
    assert max(late) > retry[-1]  # and the late attempt outlived the retry
    states, shown = TaskStates(), []
    for event in events:
        if (task := states.apply(event)) is not None:
            shown.append(task.attempt)
    assert shown == sorted(shown) and shown[-1] == 2
    assert final(events) == (2, "completed", tokens(2, 5))
    assert LAST_STATES[(wid, 2)] == tokens(2, 5)
    assert check_attempt(events, 2, COMPLETED) == tokens(2, 5)
    # Nothing of the late attempt is lost either: all 40 tokens, however it ends.
    assert task_sequences(events, 1) == list(range(len(task_sequences(events, 1))))
    assert LAST_STATES[(wid, 1)] == tokens(1, 40)
    assert duplicate_ids(events) == []


async def test_overlapping_attempts_the_late_one_ends_timed_out(overlap):
    """The attempt that outlived its deadline ends with TIMED_OUT and RETRYING."""
    assert check_attempt(
        overlap, 1, [EventType.CUSTOM_TASK_TIMED_OUT, EventType.ACTIVITY_TASK_RETRYING]
    ) == tokens(1, 40)


# --- cancellation --------------------------------------------------------------------------


@pytest.mark.parametrize("cancellation", ["TRY_CANCEL", "WAIT_CANCELLATION_COMPLETED", "ABANDON"])
async def test_cancellation_types(temporal_address, nats_url, task_queue, cancellation):
    """Each cancellation type ends the heartbeating activity's task with CANCELED and the
    attempt with FAILED, with every update in; only WAIT_CANCELLATION_COMPLETED puts them
    before the workflow's end.

    ABANDON never tells the activity: it streams on until the workflow has closed and its
    next heartbeat is refused, which Temporal reports to it as a cancellation. (Had the
    workflow stayed open, the abandoned activity would have run to its own end.)
    """
    events, state = await cancel_mid_stream(
        temporal_address, nats_url, task_queue, "stream_tokens", cancellation, [RunPlan], ACTIVITIES
    )
    assert final(events) == (1, "canceled", state)
    assert duplicate_ids(events) == []


# --- graceful worker shutdown -------------------------------------------------------------


async def test_graceful_shutdown_mid_stream(temporal_address, nats_url, task_queue):
    """A worker shut down mid-task (graceful timeout passed) ends the task with FAILED and
    the attempt with RETRYING, not CANCELED; the retry on a new worker completes."""
    events = await shut_down_mid_stream(
        temporal_address, nats_url, task_queue, "stream_tokens", ACTIVITIES
    )
    assert final(events) == (2, "completed", tokens(2, 10))
    assert duplicate_ids(events) == []


# --- heartbeat timeout -----------------------------------------------------------------------


@pytest.fixture(scope="module", params=["resumes", "never"])
async def heartbeat_timeout(request, temporal_address, nats_url) -> list[StreamEvent]:
    """Attempt 1 stops heartbeating for 2 s, longer than its heartbeat timeout (1 s), but
    keeps streaming, then heartbeats again ("resumes") or never does ("never"); attempt 2
    runs meanwhile. The events once both have ended."""
    quiet = [5, 25] if request.param == "resumes" else [5, 10_000]
    client = await plugged_client(temporal_address, nats_url)
    wid, queue = unique("heartbeat"), unique("queue")
    plan = Plan("goes_quiet", queue, [quiet, [40, 10], 0.1], heartbeat=1)
    async with running_worker(client, queue, [RunPlan], ACTIVITIES):
        handle = await client.start_workflow(RunPlan.run, plan, id=wid, task_queue=queue)
        assert await handle.result() == "attempt 2"
        await wait_for_event(nats_url, wid, attempt_ended(1))
    return await collect(nats_url, workflow_exec_id=wid)


async def test_heartbeat_timeout_consumers_end_with_the_retry(heartbeat_timeout):
    """Whatever the timed-out attempt does next, consumers end with the retry's state, and
    every event of both attempts is there once."""
    events = heartbeat_timeout
    wid = events[0].data.workflow_exec_id
    assert final(events) == (2, "completed", tokens(2, 10))
    assert check_attempt(events, 2, COMPLETED) == tokens(2, 10)
    numbers = task_sequences(events, 1)
    assert numbers == list(range(len(numbers)))
    assert len(LAST_STATES[(wid, 1)]["tokens"]) > 10  # it streamed on after the timeout
    assert duplicate_ids(events) == []


async def test_heartbeat_timeout_ends_the_attempt_with_timed_out(heartbeat_timeout):
    """The attempt that missed its heartbeat timeout ends with TIMED_OUT and RETRYING."""
    wid = heartbeat_timeout[0].data.workflow_exec_id
    state = check_attempt(
        heartbeat_timeout, 1, [EventType.CUSTOM_TASK_TIMED_OUT, EventType.ACTIVITY_TASK_RETRYING]
    )
    assert state == LAST_STATES[(wid, 1)]


# --- negative control --------------------------------------------------------------------


async def test_negative_control_checks_see_a_lost_and_a_repeated_event(
    temporal_address, nats_url, task_queue
):
    """With one stored update deleted, or another stored twice, the checks above fail."""
    client = await plugged_client(temporal_address, nats_url)
    wid = unique("control")
    plan = Plan("stream_tokens", task_queue, [[6], 0.01])
    async with running_worker(client, task_queue, [RunPlan], ACTIVITIES):
        await client.execute_workflow(RunPlan.run, plan, id=wid, task_queue=task_queue)
    events = await collect(nats_url, workflow_exec_id=wid)
    assert check_attempt(events, 1, COMPLETED) == tokens(1, 6) and duplicate_ids(events) == []
    updates = [
        e.broker_sequence for e in events if e.data.event_type == EventType.CUSTOM_TASK_IN_PROGRESS
    ]
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        stored = await js.get_msg(subjects.DEFAULT_STREAM_NAME, updates[1])
        copy = await js.publish(stored.subject, stored.data, headers={MSG_ID: wid})
        repeated = await collect(nats_url, workflow_exec_id=wid)
        await js.delete_msg(subjects.DEFAULT_STREAM_NAME, copy.seq)
        await js.delete_msg(subjects.DEFAULT_STREAM_NAME, updates[0])
        lost = await collect(nats_url, workflow_exec_id=wid)
    finally:
        await nc.close()
    assert duplicate_ids(repeated) != []
    with pytest.raises(AssertionError):
        check_attempt(repeated, 1, COMPLETED)
    assert duplicate_ids(lost) == []
    with pytest.raises(AssertionError):
        check_attempt(lost, 1, COMPLETED)
