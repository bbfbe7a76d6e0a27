"""Re-sent events are stored once: a publish whose acknowledgement is late is sent again
with the same message id, and JetStream drops the copy."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
from collections import Counter
from datetime import timedelta

import pytest
from temporalio import workflow

import mistral_workflows as workflows
from mistral_workflows.core import encoding, publisher
from mistral_workflows.core.task import Task
from mistral_workflows.dev import NatsServer
from tests.support import plugged_client, rebuilt, running_worker, task_events, unique

ACK_TIMEOUT = inspect.signature(publisher.Publisher).parameters["ack_timeout"].default
PID: list[int] = []
stopped = asyncio.Event()


@workflows.activity()
async def stream_across_a_freeze() -> dict[str, int]:
    async with Task(type="counter", state={"n": 0}) as task:
        for i in range(1, 21):
            await task.update_state({"n": i})
            await asyncio.sleep(0)  # each update its own event (one loop turn would fold them)
        os.kill(PID[0], signal.SIGSTOP)  # the server takes these in but cannot answer
        stopped.set()
        for i in range(21, 41):
            await task.update_state({"n": i})
            await asyncio.sleep(0)
    return task.state


@workflow.defn
class FreezeWorkflow:
    @workflow.run
    async def run(self) -> dict[str, int]:
        return await workflow.execute_activity(
            stream_across_a_freeze, start_to_close_timeout=timedelta(seconds=60)
        )


async def freeze_scenario(temporal_address, task_queue, tmp_path) -> list:
    """Acknowledgements stop for longer than the ack timeout, so the events are re-sent."""
    stopped.clear()
    with NatsServer(store_dir=tmp_path) as server:
        PID[:] = [server.pid]
        client = await plugged_client(temporal_address, server.url)
        wid = unique("freeze")
        async with running_worker(client, task_queue, [FreezeWorkflow], [stream_across_a_freeze]):
            handle = await client.start_workflow(FreezeWorkflow.run, id=wid, task_queue=task_queue)
            await asyncio.wait_for(stopped.wait(), 30)
            await asyncio.sleep(ACK_TIMEOUT + 1.5)  # so that the events are sent again
            os.kill(server.pid, signal.SIGCONT)
            assert await handle.result() == {"n": 40}
        return await task_events(server.url, workflow_exec_id=wid)


async def test_events_resent_after_a_freeze_are_stored_once(temporal_address, task_queue, tmp_path):
    """Every event is there once, in task order, and the state rebuilds exactly."""
    events = await freeze_scenario(temporal_address, task_queue, tmp_path)
    sequences = [e.data.attributes.task_sequence for e in events]
    # STARTED, 40 updates (the first, made in STARTED's loop turn, shares the second's
    # event), COMPLETED.
    assert sorted(sequences) == list(range(41))
    (task,) = rebuilt(events)
    assert task.state == {"n": 40}


async def test_negative_control_without_message_ids_copies_are_stored(
    temporal_address, task_queue, tmp_path, monkeypatch
):
    """With the message id header renamed, JetStream cannot drop the re-sent copies."""
    monkeypatch.setattr(encoding, "MSG_ID", "X-Not-A-Msg-Id")
    events = await freeze_scenario(temporal_address, task_queue, tmp_path)
    copies = Counter(e.data.event_id for e in events)
    assert max(copies.values()) > 1
    with pytest.raises(AssertionError):
        assert sorted(e.data.attributes.task_sequence for e in events) == list(range(42))
