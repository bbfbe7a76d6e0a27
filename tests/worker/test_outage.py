"""NATS down for longer than an activity can wait: the attempt fails with a clear, retryable
error, and the next attempt streams normally once NATS is back."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RetryPolicy

import mistral_workflows as workflows
from mistral_workflows import MistralWorkflowsPlugin, StreamEvent
from mistral_workflows.core.events import EventType
from mistral_workflows.core.subjects import LIFECYCLE_STREAM
from mistral_workflows.core.task import Task
from mistral_workflows.dev import NatsServer
from tests.support import collect, plugged_client, rebuilt, running_worker, task_events, unique
from tests.workflows import Noop

SERVER: list[NatsServer] = []
killed = asyncio.Event()


@workflows.activity()
async def outlives_an_outage() -> str:
    attempt = activity.info().attempt
    async with Task(type="tokens", state={"tokens": []}) as task:
        for i in range(10):
            await task.update_state({"tokens": [*task.state["tokens"], f"{attempt}-{i}"]})
            if attempt == 1 and i == 4:
                SERVER[0].kill()
                killed.set()
    return f"attempt {attempt}"


@workflow.defn
class OutageWorkflow:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            outlives_an_outage,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5),
        )


async def test_attempt_fails_during_outage_and_next_attempt_streams(
    temporal_address, task_queue, tmp_path, caplog
):
    """Events that cannot be stored fail the attempt with PublishError; after NATS returns,
    the retry streams and the rebuilt state is the last attempt's."""
    killed.clear()
    with NatsServer(store_dir=tmp_path) as server:
        SERVER[:] = [server]
        client = await plugged_client(temporal_address, server.url, persist_timeout=2)
        wid = unique("outage")
        async with running_worker(client, task_queue, [OutageWorkflow], [outlives_an_outage]):
            handle = await client.start_workflow(OutageWorkflow.run, id=wid, task_queue=task_queue)
            await asyncio.wait_for(killed.wait(), 30)
            await asyncio.sleep(3)  # longer than persist_timeout: attempt 1 gives up
            server.restart()
            assert await asyncio.wait_for(handle.result(), 60) == "attempt 2"
        history = await handle.fetch_history()
        # Temporal keeps the failure of the attempt before the last one on its start event.
        failures = [
            e.activity_task_started_event_attributes.last_failure
            for e in history.events
            if e.HasField("activity_task_started_event_attributes")
        ]
        events = await task_events(server.url, workflow_exec_id=wid)
    assert len(failures) == 1 and "not acknowledged by JetStream" in failures[0].message
    assert failures[0].application_failure_info.type == "PublishError"
    assert not failures[0].application_failure_info.non_retryable
    (task,) = rebuilt(events)
    assert task.attempt == 2 and task.state == {"tokens": [f"2-{i}" for i in range(10)]}


async def test_workflow_completes_while_nats_is_down(temporal_address, task_queue, tmp_path):
    """Lifecycle events that cannot be published are logged; the workflow never fails or
    waits for NATS for long."""
    with NatsServer(store_dir=tmp_path) as server:
        client = await plugged_client(temporal_address, server.url, persist_timeout=1)
        async with running_worker(client, task_queue, [Noop]):
            await run_once_while_up(client, task_queue)
            server.kill()
            result = await asyncio.wait_for(
                client.execute_workflow(Noop.run, id=unique("noop"), task_queue=task_queue), 60
            )
    assert result == "done"


async def run_once_while_up(client, task_queue) -> None:
    """Run one workflow while NATS is up, so the worker is connected before the outage."""
    await client.execute_workflow(Noop.run, id=unique("noop-up"), task_queue=task_queue)


# --- lifecycle events made during an outage ----------------------------------------------

LIFECYCLE_OF_NOOP = [EventType.WORKFLOW_EXECUTION_STARTED, EventType.WORKFLOW_EXECUTION_COMPLETED]
LIFECYCLE_OF_ONE_STEP = [
    EventType.WORKFLOW_EXECUTION_STARTED,
    EventType.ACTIVITY_TASK_STARTED,
    EventType.ACTIVITY_TASK_COMPLETED,
    EventType.WORKFLOW_EXECUTION_COMPLETED,
]


@workflows.activity()
async def one_step() -> str:
    return "stepped"


@workflow.defn
class OneStep:
    @workflow.run
    async def run(self) -> str:
        # No heartbeat timeout: the attempt may wait for its workflow's events to go first.
        return await workflow.execute_activity(
            one_step, start_to_close_timeout=timedelta(seconds=120)
        )


@dataclass
class StartedInOutage:
    """Two workflows started while NATS was down: a Noop and a OneStep."""

    noop: WorkflowHandle[Any, Any]
    one_step: WorkflowHandle[Any, Any]
    noop_done_while_down: bool
    noop_history: Any
    events: dict[str, list[StreamEvent]]


async def start_during_outage(
    temporal_address: str,
    task_queue: str,
    tmp_path: Any,
    *,
    down_for: float = 0,
    settle_before_restart: bool = False,
    **options: Any,
) -> StartedInOutage:
    """Kill NATS, start a Noop and a OneStep, let the Noop finish, keep NATS down
    `down_for` seconds more (or, with `settle_before_restart`, until the relay is done with
    the Noop's events: it can only give them up), restart NATS, let the OneStep finish, and
    read the lifecycle events of both once the relay is done with them."""
    with NatsServer(store_dir=tmp_path) as server:
        plugin = MistralWorkflowsPlugin(nats_url=server.url, **options)
        client = await Client.connect(temporal_address, plugins=[plugin])
        async with running_worker(client, task_queue, [Noop, OneStep], [one_step]):
            await run_once_while_up(client, task_queue)
            relay = plugin._relay
            assert relay is not None
            server.kill()
            noop = await client.start_workflow(Noop.run, id=unique("noop"), task_queue=task_queue)
            one = await client.start_workflow(
                OneStep.run, id=unique("one-step"), task_queue=task_queue
            )
            await asyncio.wait_for(noop.result(), 60)
            done_while_down = server.pid is None  # NATS had no part in the Noop's end
            await asyncio.sleep(down_for)
            if settle_before_restart:
                await relay.stored_before(noop.id, 60)
            server.restart()
            assert await asyncio.wait_for(one.result(), 60) == "stepped"
            for handle in (noop, one):  # until their events are stored, or given up
                await relay.stored_before(handle.id, 60)
        events = {
            h.id: await collect(server.url, workflow_exec_id=h.id, stream=LIFECYCLE_STREAM)
            for h in (noop, one)
        }
        return StartedInOutage(noop, one, done_while_down, await noop.fetch_history(), events)


def assert_once_in_order(events: list[StreamEvent], expected: list[str]) -> None:
    """The lifecycle events are exactly `expected`: each once, in that order."""
    assert [e.data.event_type for e in events] == expected


def workflow_tasks(history: Any) -> int:
    """Workflow tasks the run took (a local activity holding one for long adds more)."""
    return sum(e.HasField("workflow_task_started_event_attributes") for e in history.events)


async def test_lifecycle_events_made_during_an_outage_arrive_after_it(
    temporal_address, task_queue, tmp_path, caplog
):
    """NATS down at workflow start: a workflow completes without waiting for it, in one
    workflow task; once NATS is back, every lifecycle event is stored, once, in the order
    it was made, the workflow's before its activity's."""
    outcome = await start_during_outage(temporal_address, task_queue, tmp_path)
    assert outcome.noop_done_while_down
    assert workflow_tasks(outcome.noop_history) == 1
    assert not [r for r in caplog.records if "may not be published" in r.getMessage()]
    assert_once_in_order(outcome.events[outcome.noop.id], LIFECYCLE_OF_NOOP)
    assert_once_in_order(outcome.events[outcome.one_step.id], LIFECYCLE_OF_ONE_STEP)


async def test_lifecycle_events_outlive_an_outage_longer_than_persist_timeout(
    temporal_address, task_queue, tmp_path, caplog
):
    """NATS down for several `persist_timeout`s: the relay's sends fail and are made again
    until NATS is back; the workflow's lifecycle events are then stored once, in order."""
    caplog.set_level(logging.WARNING, logger="mistral_workflows")
    outcome = await start_during_outage(
        temporal_address, task_queue, tmp_path, down_for=3, persist_timeout=1
    )
    assert outcome.noop_done_while_down
    assert any("re-sending them in order" in r.getMessage() for r in caplog.records)
    assert_once_in_order(outcome.events[outcome.noop.id], LIFECYCLE_OF_NOOP)


async def test_negative_control_events_given_up_during_the_outage_are_missed(
    temporal_address, task_queue, tmp_path
):
    """With a duplicate window shorter than the outage the relay gives the events up (it
    says so), and the check above sees them missing."""
    outcome = await start_during_outage(
        temporal_address,
        task_queue,
        tmp_path,
        settle_before_restart=True,
        persist_timeout=1,
        duplicate_window=timedelta(seconds=1),
    )
    assert outcome.noop_done_while_down
    with pytest.raises(AssertionError):
        assert_once_in_order(outcome.events[outcome.noop.id], LIFECYCLE_OF_NOOP)


@workflow.defn
class PlanInWorkflowCode:
    """A `Task` in workflow code: its events wait until stored, in order with the run's."""

    @workflow.run
    async def run(self) -> dict[str, Any]:
        async with Task(type="plan", state={"done": []}) as plan:
            await plan.update_state({"done": ["one"]})
        return plan.state


async def test_a_task_in_workflow_code_waits_out_an_outage_and_loses_nothing(
    temporal_address, task_queue, tmp_path
):
    """Started while NATS is down, a workflow whose code updates a `Task` waits for NATS
    (its workflow task fails with PublishError and is retried); once NATS is back it
    completes, and the run's events are each stored once, in the order they were made."""
    with NatsServer(store_dir=tmp_path) as server:
        client = await plugged_client(temporal_address, server.url, persist_timeout=1)
        async with running_worker(client, task_queue, [Noop, PlanInWorkflowCode]):
            await run_once_while_up(client, task_queue)
            server.kill()
            handle = await client.start_workflow(
                PlanInWorkflowCode.run, id=unique("plan"), task_queue=task_queue
            )
            await wait_for_a_failed_workflow_task(handle)
            server.restart()
            assert await asyncio.wait_for(handle.result(), 60) == {"done": ["one"]}
        events = await collect(server.url, workflow_exec_id=handle.id)
    assert [e.data.event_type for e in events] == [
        EventType.WORKFLOW_EXECUTION_STARTED,
        EventType.CUSTOM_TASK_STARTED,
        EventType.CUSTOM_TASK_IN_PROGRESS,
        EventType.CUSTOM_TASK_COMPLETED,
        EventType.WORKFLOW_EXECUTION_COMPLETED,
    ]
    (plan,) = rebuilt(events)
    assert plan.state == {"done": ["one"]} and plan.status == "completed"


async def wait_for_a_failed_workflow_task(handle: WorkflowHandle[Any, Any]) -> None:
    """Until the run's history shows a workflow task that failed (the outage reached it)."""
    for _ in range(600):
        history = await handle.fetch_history()
        if any(e.HasField("workflow_task_failed_event_attributes") for e in history.events):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("no workflow task failed during the outage")
