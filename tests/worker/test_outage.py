"""NATS down for longer than an activity can wait: the attempt fails with a clear, retryable
error, and the next attempt streams normally once NATS is back."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

import mistral_workflows as workflows
from mistral_workflows.core.task import Task
from mistral_workflows.dev import NatsServer
from tests.support import plugged_client, rebuilt, running_worker, task_events, unique
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
