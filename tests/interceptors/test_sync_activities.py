"""`Task` in `def` activities: the same event sequences as in `async def` activities for
completion, failure, retries, timeouts, cancellation and worker shutdown, against real
servers; and clear errors for a Task used where it cannot work."""

from __future__ import annotations

import threading

import pytest
from temporalio.worker import Worker

from mistral_workflows import InvalidStateError, NotInPluggedActivityError, PayloadTooLargeError
from mistral_workflows.core.events import EventType
from mistral_workflows.core.task import Task
from tests.faults.test_worker_faults import (
    COMPLETED,
    attempt_ended,
    cancel_mid_stream,
    final,
    shut_down_mid_stream,
)
from tests.faults.worker_process import (
    LAST_STATES,
    Plan,
    RunPlan,
    check_attempt,
    duplicate_ids,
    kinds,
    tokens,
    wait_for_event,
)
from tests.interceptors import sync_activities as s
from tests.interceptors.test_lifecycle import no_duplicates, runs
from tests.support import collect, plugged_client, rebuilt, run_call, running_worker, unique
from tests.workflows import Call, RunActivity

WORKFLOWS = [s.SyncFlaky, s.SyncTimesOut, RunPlan, RunActivity]


async def test_sync_activity_fails_twice_then_completes(temporal_address, nats_url, task_queue):
    """Two failed attempts (FAILED, RETRYING), then COMPLETED: the async sequence, and every
    event is stored before the workflow gets the result."""
    client = await plugged_client(temporal_address, nats_url)
    wid = unique("sync-flaky")
    async with running_worker(client, task_queue, WORKFLOWS, s.SYNC_ACTIVITIES):
        result = await client.execute_workflow(s.SyncFlaky.run, id=wid, task_queue=task_queue)
        # Read at once, with the worker still up: the events were in before the result.
        events = await collect(nats_url, workflow_exec_id=wid)
    assert result == "ok"
    attempt = [
        EventType.ACTIVITY_TASK_STARTED,
        EventType.CUSTOM_TASK_STARTED,
        EventType.CUSTOM_TASK_IN_PROGRESS,
    ]
    (seq,) = runs(events).values()
    assert seq == [
        EventType.WORKFLOW_EXECUTION_STARTED,
        *attempt,
        EventType.CUSTOM_TASK_FAILED,
        EventType.ACTIVITY_TASK_RETRYING,
        *attempt,
        EventType.CUSTOM_TASK_FAILED,
        EventType.ACTIVITY_TASK_RETRYING,
        *attempt,
        EventType.CUSTOM_TASK_COMPLETED,
        EventType.ACTIVITY_TASK_COMPLETED,
        EventType.WORKFLOW_EXECUTION_COMPLETED,
    ]
    failed = [e for e in events if e.data.event_type == EventType.CUSTOM_TASK_FAILED]
    assert failed[0].data.attributes.failure.message == "RuntimeError: attempt 1 failed"
    (task,) = rebuilt(events)
    assert (task.attempt, task.status, task.state) == (3, "completed", {"tokens": ["attempt-3"]})
    no_duplicates(events)


async def test_sync_activity_hits_start_to_close_timeout(temporal_address, nats_url, task_queue):
    """Each timed-out attempt ends with TIMED_OUT and RETRYING, the last with FAILED: the
    thread stops at its next update after the deadline."""
    client = await plugged_client(temporal_address, nats_url)
    wid = unique("sync-timeout")
    async with running_worker(client, task_queue, WORKFLOWS, s.SYNC_ACTIVITIES):
        result = await client.execute_workflow(s.SyncTimesOut.run, id=wid, task_queue=task_queue)
        await wait_for_event(nats_url, wid, attempt_ended(2))
    assert "StartToClose" in result
    events = await collect(nats_url, workflow_exec_id=wid)
    attempt = [
        EventType.ACTIVITY_TASK_STARTED,
        EventType.CUSTOM_TASK_STARTED,
        EventType.CUSTOM_TASK_IN_PROGRESS,
        EventType.CUSTOM_TASK_TIMED_OUT,
    ]
    seq = kinds(events)
    assert [t for t in seq if not t.startswith("WORKFLOW_")] == [
        *attempt,
        EventType.ACTIVITY_TASK_RETRYING,
        *attempt,
        EventType.ACTIVITY_TASK_FAILED,
    ]
    ended = next(e for e in events if e.data.event_type == EventType.CUSTOM_TASK_TIMED_OUT)
    assert ended.data.attributes.timeout_type == "START_TO_CLOSE"
    failure = next(
        e for e in events if e.data.event_type == EventType.ACTIVITY_TASK_FAILED
    ).data.attributes.failure
    assert failure.message == "activity START_TO_CLOSE timeout"
    no_duplicates(events)


@pytest.mark.parametrize(
    ("activity", "cancellation"),
    [
        ("sync_stream_tokens", "TRY_CANCEL"),
        ("sync_stream_tokens", "WAIT_CANCELLATION_COMPLETED"),
        ("sync_stream_tokens", "ABANDON"),
        ("sync_polls_cancellation", "WAIT_CANCELLATION_COMPLETED"),
    ],
)
async def test_sync_cancellation_types(
    temporal_address, nats_url, task_queue, activity, cancellation
):
    """Each cancellation type that reaches the thread (raised in it by temporalio, or seen
    through `activity.is_cancelled()` with `no_thread_cancel_exception=True`) ends the task
    with CANCELED and the attempt with FAILED, with every update in; as for async
    activities, only WAIT_CANCELLATION_COMPLETED puts them before the workflow's end."""
    events, state = await cancel_mid_stream(
        temporal_address, nats_url, task_queue, activity, cancellation, WORKFLOWS, s.SYNC_ACTIVITIES
    )
    assert final(events) == (1, "canceled", state)
    assert duplicate_ids(events) == []


@pytest.mark.parametrize("quiet", ["resumes", "never"])
async def test_sync_heartbeat_timeout(temporal_address, nats_url, quiet):
    """Attempt 1 stops heartbeating longer than its heartbeat timeout but streams on, then
    heartbeats again or never does: it ends with TIMED_OUT and RETRYING, attempt 2
    completes, and consumers end with attempt 2's state."""
    client = await plugged_client(temporal_address, nats_url)
    wid, queue = unique("sync-heartbeat"), unique("queue")
    gap = [5, 25] if quiet == "resumes" else [5, 10_000]
    plan = Plan("sync_goes_quiet", queue, [gap, [40, 10], 0.1], heartbeat=1)
    async with running_worker(client, queue, WORKFLOWS, s.SYNC_ACTIVITIES):
        handle = await client.start_workflow(RunPlan.run, plan, id=wid, task_queue=queue)
        assert await handle.result() == "attempt 2"
        await wait_for_event(nats_url, wid, attempt_ended(1))
    events = await collect(nats_url, workflow_exec_id=wid)
    state = check_attempt(
        events, 1, [EventType.CUSTOM_TASK_TIMED_OUT, EventType.ACTIVITY_TASK_RETRYING]
    )
    assert state == LAST_STATES[(wid, 1)]
    timed_out = next(e for e in events if e.data.event_type == EventType.CUSTOM_TASK_TIMED_OUT)
    assert timed_out.data.attributes.timeout_type == "HEARTBEAT"
    assert check_attempt(events, 2, COMPLETED) == tokens(2, 10)
    assert final(events) == (2, "completed", tokens(2, 10))
    assert duplicate_ids(events) == []


async def test_sync_worker_shut_down_mid_task(temporal_address, nats_url, task_queue):
    """A worker shut down mid-task (graceful timeout passed) ends the thread's task with
    FAILED and the attempt with RETRYING; the retry on a new worker completes."""
    events = await shut_down_mid_stream(
        temporal_address, nats_url, task_queue, "sync_stream_tokens", s.SYNC_ACTIVITIES
    )
    assert duplicate_ids(events) == []


async def test_sync_bad_input_gives_the_async_errors(temporal_address, nats_url, task_queue):
    """Non-JSON values and oversized events raise the same error classes and messages as
    in an async activity, and the task goes on."""
    messages, events = await run_call(
        temporal_address, nats_url, task_queue, Call("sync_bad_inputs"), s.SYNC_ACTIVITIES
    )
    names = [m.split(":")[0] for m in messages]
    assert names == [InvalidStateError.__name__] * 3 + [PayloadTooLargeError.__name__]
    assert "set" in messages[0] and "bytes" in messages[1] and "nan" in messages[2].lower()
    assert "reference" in messages[3]
    assert [e.data.event_type for e in events] == [
        EventType.CUSTOM_TASK_STARTED,
        EventType.CUSTOM_TASK_IN_PROGRESS,
        EventType.CUSTOM_TASK_COMPLETED,
    ]
    assert rebuilt(events).get(events[0].data.attributes.custom_task_id).state == {"ok": 2}


async def test_sync_set_state_and_pydantic_state(temporal_address, nats_url, task_queue):
    """`set_state` publishes the difference, and pydantic state is merged and validated,
    as in an async activity."""
    result, events = await run_call(
        temporal_address, nats_url, task_queue, Call("sync_set_state_and_model"), s.SYNC_ACTIVITIES
    )
    assert result == [{"a": 2, "c": "x"}, {"done": 2, "notes": ["one"]}]
    states = {t.task_type: t for t in rebuilt(events)}
    assert states["plain"].state == result[0] and states["model"].state == result[1]
    assert [e.data.event_type for e in events if e.stream == "model"] == [
        EventType.CUSTOM_TASK_STARTED,
        EventType.CUSTOM_TASK_IN_PROGRESS,
        EventType.CUSTOM_TASK_IN_PROGRESS,
        EventType.CUSTOM_TASK_COMPLETED,
    ]


async def test_mixing_the_sync_and_async_apis_says_which_to_use(
    temporal_address, nats_url, task_queue
):
    """`async with` in a def activity's thread, `with` in an async activity and an update
    from another thread (of either form) are refused with a message naming the right
    form."""
    client = await plugged_client(temporal_address, nats_url)
    async with running_worker(client, task_queue, [RunActivity], s.SYNC_ACTIVITIES):
        in_thread = await client.execute_workflow(
            RunActivity.run, Call("sync_misuses"), id=unique("misuse"), task_queue=task_queue
        )
        on_loop = await client.execute_workflow(
            RunActivity.run, Call("async_uses_sync_api"), id=unique("misuse"), task_queue=task_queue
        )
    async_in_thread, other_thread = in_thread
    assert "in a `def` activity" in async_in_thread and "`with Task(...)" in async_in_thread
    assert "from the thread that entered it" in other_thread
    sync_on_loop, from_a_thread = on_loop
    assert "`async def` activity use `async with Task(...)" in sync_on_loop
    assert "not from another thread" in from_a_thread
    assert "`def` activity, which uses `with Task(...) as task:`" in from_a_thread


async def test_sync_task_in_a_plain_thread_is_refused():
    """`with Task(...)` in a thread outside any activity raises NotInPluggedActivityError."""
    errors: list[BaseException] = []

    def plain() -> None:
        try:
            with Task(type="progress", state={}):
                pass
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=plain)
    thread.start()
    thread.join()
    (error,) = errors
    assert isinstance(error, NotInPluggedActivityError)
    assert "MistralWorkflowsPlugin" in str(error)


async def test_the_plugin_gives_def_activities_a_thread_pool(
    temporal_address, nats_url, task_queue
):
    """A plugged worker with `def` activities and no executor gets a thread pool, shut down
    with the worker; one given to the worker is used as it is and left running."""
    import concurrent.futures

    client = await plugged_client(temporal_address, nats_url)
    async with running_worker(client, task_queue, [RunActivity], s.SYNC_ACTIVITIES) as worker:
        executor = worker.config(active_config=True).get("activity_executor")
        assert isinstance(executor, concurrent.futures.ThreadPoolExecutor)
        result = await client.execute_workflow(
            RunActivity.run, Call("sync_bad_inputs"), id=unique("pool"), task_queue=task_queue
        )
        assert len(result) == 4
    with pytest.raises(RuntimeError, match="shutdown"):
        executor.submit(print)
    own = concurrent.futures.ThreadPoolExecutor(4)
    async with Worker(
        client, task_queue=task_queue, activities=s.SYNC_ACTIVITIES, activity_executor=own
    ) as worker:
        assert worker.config(active_config=True).get("activity_executor") is own
    assert own.submit(lambda: 1).result() == 1
    own.shutdown()


async def test_negative_control_without_the_plugin_def_activities_need_an_executor(
    temporal_address, task_queue
):
    """Negative control: temporalio itself refuses a worker with `def` activities and no
    executor, so the plugin's thread pool is what makes the worker above start."""
    from temporalio.client import Client

    client = await Client.connect(temporal_address)
    with pytest.raises(ValueError, match="activity_executor must be present"):
        Worker(client, task_queue=task_queue, activities=s.SYNC_ACTIVITIES)
