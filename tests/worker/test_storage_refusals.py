"""Streams that refuse events (full, deleted): the broker's reason fails the next update at
once; a deleted stream is named, and created again where the plugin provisions streams; a
snapshot that cannot be stored never fails an activity."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import nats
import pytest
from nats.js.api import DiscardPolicy
from nats.js.client import JetStreamContext
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy

import mistral_workflows as workflows
from mistral_workflows import MistralWorkflowsPlugin, PublishError, StreamEvent
from mistral_workflows.core import emitter as emitter_module
from mistral_workflows.core.task import Task
from tests.support import collect, rebuilt, running_worker, unique

# Far more updates than an acknowledgement can lag behind: only an error that never comes
# lets the loop reach the end.
UPDATES = 20_000

halfway = asyncio.Event()
go_on = asyncio.Event()
ERRORS: list[PublishError] = []

Act = Callable[[JetStreamContext], Awaitable[Any]]


async def update_until_refused(task: Task[Any]) -> None:
    """Update the task until an update fails (the error is kept in ERRORS)."""
    for i in range(UPDATES):
        try:
            await task.update_state({"n": i})
        except PublishError as e:
            ERRORS.append(e)
            raise
        await asyncio.sleep(0)  # each update its own event


@workflows.activity()
async def streams_into_a_stream_that_fills_up() -> str:
    async with Task(type="filling", state={"n": -1}) as task:
        halfway.set()
        await go_on.wait()  # the stream is full now
        await update_until_refused(task)
    return "never refused"


async def tokens(refused: bool) -> str:
    """Six tokens; in the first attempt a stream goes halfway (then, if `refused`, update
    until an update fails)."""
    attempt = activity.info().attempt
    async with Task(type="tokens", state={"tokens": []}) as task:
        for i in range(6):
            await task.update_state({"tokens": [*task.state["tokens"], f"{attempt}-{i}"]})
            if attempt == 1 and i == 2:
                halfway.set()
                await go_on.wait()  # a stream is gone now
                if refused:
                    await update_until_refused(task)
            await asyncio.sleep(0)
    return f"attempt {attempt}"


@workflows.activity()
async def outlives_its_stream() -> str:
    return await tokens(refused=False)


@workflows.activity()
async def loses_its_stream() -> str:
    return await tokens(refused=True)


@workflow.defn
class Retried:
    """Runs one activity, up to three attempts; returns its result or failure."""

    @workflow.run
    async def run(self, name: str) -> Any:
        try:
            return await workflow.execute_activity(
                name,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=0.2), maximum_attempts=3
                ),
            )
        except Exception as e:
            return {"failed": str(e.__cause__)}


@dataclasses.dataclass
class Streams:
    """A plugin on streams of its own, and a way to run a workflow and change them."""

    nats_url: str
    temporal_address: str
    plugin: MistralWorkflowsPlugin

    @property
    def name(self) -> str:
        return self.plugin.stream.name

    async def create(self) -> None:
        """Create both streams by hand, as an administrator would without provisioning."""
        settings = self.plugin.stream

        async def both(js: JetStreamContext) -> None:
            await js.add_stream(settings.config())
            await js.add_stream(settings.snapshot_config())

        await self.change(both)

    async def change(self, act: Act) -> None:
        nc = await nats.connect(self.nats_url)
        try:
            await act(nc.jetstream())
        finally:
            await nc.close()

    async def run(self, queue: str, name: str, act: Act) -> tuple[str, Any]:
        """Run activity `name`; once its first attempt is halfway, `act` on the streams."""
        client = await Client.connect(self.temporal_address, plugins=[self.plugin])
        wid = unique("refuse")
        activities = [streams_into_a_stream_that_fills_up, outlives_its_stream, loses_its_stream]
        async with running_worker(client, queue, [Retried], activities):
            handle = await client.start_workflow(Retried.run, name, id=wid, task_queue=queue)
            await asyncio.wait_for(halfway.wait(), 30)
            await self.change(act)
            go_on.set()
            return wid, await asyncio.wait_for(handle.result(), 60)

    async def task_events(self, wid: str) -> list[StreamEvent]:
        events = await collect(
            self.nats_url,
            workflow_exec_id=wid,
            stream_name=self.name,
            subject_prefix=self.plugin.stream.prefix,
        )
        return [e for e in events if e.data.event_type.startswith("CUSTOM_TASK")]


def make_streams(nats_url: str, temporal_address: str, **options: Any) -> Streams:
    halfway.clear()
    go_on.clear()
    ERRORS.clear()
    name = unique("REFUSE").replace("-", "_")
    plugin = MistralWorkflowsPlugin(
        nats_url=nats_url,
        stream_name=name,
        subject_prefix=name.lower(),
        persist_timeout=3,
        **options,
    )
    return Streams(nats_url, temporal_address, plugin)


@pytest.fixture
def streams(nats_url: str, temporal_address: str) -> Streams:
    return make_streams(nats_url, temporal_address)


def assert_attempt_stored(events: list[StreamEvent], attempt: int) -> None:
    """Every event of the attempt's task is there, in order, and rebuilds its state."""
    assert [e.data.attributes.task_sequence for e in events] == list(range(len(events)))
    (task,) = rebuilt(events)
    assert task.attempt == attempt and task.status == "completed"
    assert task.state == {"tokens": [f"{attempt}-{i}" for i in range(6)]}


async def test_a_full_stream_fails_the_next_update_with_the_reason(streams, task_queue):
    """A stream that refuses events (maximum bytes) fails update_state with the broker's
    reason, and the attempt with it, instead of being retried until the persist timeout."""

    async def fill_up(js: JetStreamContext) -> None:
        stored = (await js.stream_info(streams.name)).state.bytes
        config = streams.plugin.stream.config()
        await js.update_stream(
            dataclasses.replace(config, max_bytes=stored, discard=DiscardPolicy.NEW)
        )

    _, result = await streams.run(task_queue, "streams_into_a_stream_that_fills_up", fill_up)
    assert ERRORS, "no update failed"
    message = str(ERRORS[0])
    assert "maximum bytes exceeded" in message and repr(streams.name) in message
    assert "remove its limits or make room" in message
    assert "maximum bytes exceeded" in result["failed"]


async def test_a_stream_deleted_between_runs_is_created_again(streams, task_queue):
    """Streams deleted while the worker runs are created again at the next event; every
    event is stored and the task rebuilds; the first attempt completes."""
    go_on.set()
    client = await Client.connect(streams.temporal_address, plugins=[streams.plugin])
    wid = unique("gone")
    async with running_worker(client, task_queue, [Retried], [outlives_its_stream]):
        await streams.plugin.wait_connected()
        await streams.change(lambda js: js.delete_stream(streams.name))
        result = await client.execute_workflow(
            Retried.run, "outlives_its_stream", id=wid, task_queue=task_queue
        )
    assert result == "attempt 1"
    assert_attempt_stored(await streams.task_events(wid), 1)


async def test_a_stream_deleted_mid_activity_is_created_again_and_the_retry_stored(
    streams, task_queue
):
    """The stream deleted mid-activity is created again; the attempt, whose earlier events
    went with the old stream, fails saying so, and its retry stores every event."""
    wid, result = await streams.run(
        task_queue, "loses_its_stream", lambda js: js.delete_stream(streams.name)
    )
    assert result == "attempt 2"
    assert "was deleted while this attempt ran" in str(ERRORS[0])
    assert_attempt_stored(await streams.task_events(wid), 2)


async def test_without_provisioning_a_deleted_stream_is_named(
    nats_url, temporal_address, task_queue
):
    """With provision_stream=False, a deleted stream fails the attempt naming it."""
    streams = make_streams(nats_url, temporal_address, provision_stream=False)
    await streams.create()
    _, result = await streams.run(
        task_queue, "loses_its_stream", lambda js: js.delete_stream(streams.name)
    )
    expected = f"JetStream stream {streams.name!r} does not exist"
    assert expected in str(ERRORS[0]) and "deleted?" in str(ERRORS[0])
    assert expected in result["failed"]


async def test_a_deleted_snapshot_stream_does_not_fail_the_activity(streams, task_queue):
    """Snapshots are best effort: with the snapshot stream deleted mid-activity, the first
    attempt completes and every event is stored; the snapshot stream is created again."""
    snapshots = f"{streams.name}_STATE"
    wid, result = await streams.run(
        task_queue, "outlives_its_stream", lambda js: js.delete_stream(snapshots)
    )
    assert result == "attempt 1" and not ERRORS
    assert_attempt_stored(await streams.task_events(wid), 1)
    info: list[Any] = []
    await streams.change(lambda js: _append(info, js.stream_info(snapshots)))
    assert info[0].config.max_msgs_per_subject == 1  # created again, as the plugin makes it


async def _append(into: list[Any], call: Awaitable[Any]) -> None:
    into.append(await call)


class SnapshotAsEvent(emitter_module.Pending):
    """A snapshot that must be stored like an event (the behaviour before the fix)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.snapshot = False


async def test_negative_control_snapshots_treated_as_events_fail_the_attempt(
    nats_url, temporal_address, task_queue, monkeypatch
):
    """Snapshots that must be stored like events fail the attempt when their stream is
    deleted: the test above would see that failure."""
    streams = make_streams(nats_url, temporal_address, provision_stream=False)
    await streams.create()
    monkeypatch.setattr(emitter_module, "Pending", SnapshotAsEvent)
    snapshots = f"{streams.name}_STATE"
    _, result = await streams.run(
        task_queue, "outlives_its_stream", lambda js: js.delete_stream(snapshots)
    )
    assert result != "attempt 1"
