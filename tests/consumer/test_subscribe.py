"""subscribe(): server-side filters, resume from a sequence, live delivery, clear errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import nats
import orjson
import pytest

import mistral_workflows as workflows
from mistral_workflows import ConfigurationError, subscribe
from mistral_workflows.core import subjects
from mistral_workflows.core.envelope import envelope
from mistral_workflows.core.events import EventType
from mistral_workflows.core.task import Task
from mistral_workflows.worker import StreamSettings, provision
from tests.support import collect, consumer_made, plugged_client, running_worker, types, unique
from tests.workflows import Call, RunActivity


@workflows.activity()
async def two_streams(n: int) -> int:
    async with (
        Task(type="alpha", state={"i": 0}) as a,
        Task(type="beta", state={"i": 0}) as b,
    ):
        for i in range(1, n + 1):
            await a.update_state({"i": i})
            await b.update_state({"i": i})
            await asyncio.sleep(0.01)
    return n


class _Said(logging.Handler):
    """Sets `seen` once the package logs a message that contains `text`."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text, self.seen = text, asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


@contextlib.contextmanager
def logged(text: str) -> Iterator[asyncio.Event]:
    """An event set once the package logs `text`: a reader's own word that it is waiting."""
    handler = _Said(text)
    logger = logging.getLogger("mistral_workflows")
    logger.addHandler(handler)
    try:
        yield handler.seen
    finally:
        logger.removeHandler(handler)


async def run(temporal_address, nats_url, task_queue, n=5, wid=None) -> str:
    client = await plugged_client(temporal_address, nats_url)
    wid = wid or unique("two")
    async with running_worker(client, task_queue, [RunActivity], [two_streams]):
        await client.execute_workflow(
            RunActivity.run, Call("two_streams", [n]), id=wid, task_queue=task_queue
        )
    return wid


async def test_stream_filter(temporal_address, nats_url, task_queue):
    """stream= keeps one task type only."""
    wid = await run(temporal_address, nats_url, task_queue)
    events = await collect(nats_url, workflow_exec_id=wid, stream="beta")
    assert {e.stream for e in events} == {"beta"} and len(events) == 7


async def test_event_types_filter(temporal_address, nats_url, task_queue):
    """event_types= keeps the given types only."""
    wid = await run(temporal_address, nats_url, task_queue)
    events = await collect(
        nats_url, workflow_exec_id=wid, event_types={EventType.CUSTOM_TASK_COMPLETED}
    )
    assert types(events) == [EventType.CUSTOM_TASK_COMPLETED] * 2


async def test_workflow_name_filter(temporal_address, nats_url, task_queue):
    """workflow_name= matches the workflow type; another name matches nothing of it."""
    wid = await run(temporal_address, nats_url, task_queue)
    mine = await collect(nats_url, workflow_name="RunActivity", root_workflow_exec_id=wid)
    none = await collect(nats_url, workflow_name="Other", root_workflow_exec_id=wid)
    assert len(mine) == 18 and none == []  # 2 tasks x 7, and 4 lifecycle events


async def test_start_seq_is_inclusive(temporal_address, nats_url, task_queue):
    """Resuming from a broker sequence delivers that event and everything after it."""
    wid = await run(temporal_address, nats_url, task_queue)
    everything = await collect(nats_url, workflow_exec_id=wid)
    resumed = await collect(nats_url, workflow_exec_id=wid, start_seq=everything[5].broker_sequence)
    assert resumed == everything[5:]


async def test_live_events_arrive_while_the_activity_runs(temporal_address, nats_url, task_queue):
    """A subscriber started first sees each event as it is produced, in order."""
    wid = unique("live")
    seen: list[str] = []

    async def follow() -> None:
        async for event in subscribe(nats_url, workflow_exec_id=wid, stream="alpha"):
            seen.append(event.data.event_type)
            if event.data.event_type == EventType.CUSTOM_TASK_COMPLETED:
                return

    nc = await nats.connect(nats_url)
    await provision(nc.jetstream(), StreamSettings())  # a consumer needs its stream
    await nc.close()
    async with consumer_made(nats_url) as made:
        follower = asyncio.create_task(follow())
        await made()
    await run(temporal_address, nats_url, task_queue, n=20, wid=wid)
    await asyncio.wait_for(follower, 10)
    assert seen == [EventType.CUSTOM_TASK_STARTED] + [EventType.CUSTOM_TASK_IN_PROGRESS] * 20 + [
        EventType.CUSTOM_TASK_COMPLETED
    ]


async def test_until_complete_stops_after_the_workflow_ends(nats_url):
    """until_complete ends the iteration at the workflow's terminal event."""
    wid = unique("ends")
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    for kind in (EventType.WORKFLOW_EXECUTION_STARTED, EventType.WORKFLOW_EXECUTION_COMPLETED):
        await js.publish(
            lifecycle_subject(wid),
            orjson.dumps(lifecycle_event(wid, kind)),
        )
    seen = [
        e.data.event_type
        async for e in subscribe(nc, workflow_exec_id=wid, stream="alpha", until_complete=True)
    ]
    assert not nc.is_closed  # a connection passed in is left open
    await nc.close()
    assert seen == []  # lifecycle events were read to stop, not shown for stream="alpha"


async def test_foreign_message_is_reported_and_skipped(nats_url, caplog):
    """A message that is not an event is logged with its sequence, and reading goes on."""
    wid = unique("foreign")
    nc = await nats.connect(nats_url)
    await nc.jetstream().publish(lifecycle_subject(wid), b"not json")
    await nc.jetstream().publish(
        lifecycle_subject(wid),
        orjson.dumps(lifecycle_event(wid, EventType.WORKFLOW_EXECUTION_STARTED)),
    )
    await nc.close()
    with caplog.at_level(logging.WARNING, logger="mistral_workflows"):
        events = await collect(nats_url, workflow_exec_id=wid)
    assert types(events) == [EventType.WORKFLOW_EXECUTION_STARTED]
    assert "skipping message #" in caplog.text


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"event_types": ["NOPE"]}, "unknown event type"),
        ({"start_seq": 0}, "start_seq"),
        ({"until_complete": True}, "until_complete needs"),
        ({"stream": "bad stream"}, "stream type"),
    ],
)
async def test_bad_filters_are_clear_errors(nats_url, options, words):
    """Invalid filters raise ConfigurationError naming the problem, before connecting."""
    with pytest.raises(ConfigurationError, match=words):
        await collect(nats_url, **options)


def lifecycle_subject(wid: str) -> str:
    return subjects.event_subject(
        subjects.DEFAULT_PREFIX,
        namespace="default",
        stream=subjects.LIFECYCLE_STREAM,
        workflow_name="W",
        root_exec_id=wid,
        parent_exec_id=None,
        exec_id=wid,
    )


def lifecycle_event(wid: str, event_type: EventType) -> dict:
    attributes = {"task_id": wid, "workflow_name": "W", "input": {"type": "json", "value": None}}
    if event_type == EventType.WORKFLOW_EXECUTION_COMPLETED:
        attributes = {"task_id": wid, "result": {"type": "json", "value": 1}}
    return envelope(
        stream=subjects.LIFECYCLE_STREAM,
        event_type=event_type,
        event_id=f"{wid}:{event_type}",
        attributes=attributes,
        origin={
            "workflow_name": "W",
            "workflow_exec_id": wid,
            "root_workflow_exec_id": wid,
            "parent_workflow_exec_id": None,
            "workflow_run_id": "r",
        },
        workflow_context={"namespace": "default", "workflow_name": "W", "workflow_exec_id": wid},
        activity_context=None,
    )


async def test_subscriber_waits_for_the_stream_to_be_created(
    temporal_address, nats_url, task_queue, caplog
):
    """A subscriber started before any worker says it waits, then reads from the start."""
    name = unique("LATE").replace("-", "_")
    prefix = name.lower()
    wid = unique("late")
    options = {"stream_name": name, "subject_prefix": prefix}
    with caplog.at_level(logging.WARNING, logger="mistral_workflows"):
        with logged("does not exist yet") as waiting:
            follower = asyncio.create_task(
                collect(nats_url, idle=3, workflow_exec_id=wid, stream="alpha", **options)
            )
            await asyncio.wait_for(waiting.wait(), 10)
        client = await plugged_client(temporal_address, nats_url, **options)
        async with running_worker(client, task_queue, [RunActivity], [two_streams]):
            await client.execute_workflow(
                RunActivity.run, Call("two_streams", [3]), id=wid, task_queue=task_queue
            )
        events = await follower
    assert "does not exist yet" in caplog.text
    assert types(events)[0] == EventType.CUSTOM_TASK_STARTED and len(events) == 5


async def test_scope_and_activity_filters(temporal_address, nats_url, task_queue):
    """scope= and activity_name= split workflow-code events from an activity's events."""
    wid = await run(temporal_address, nats_url, task_queue)
    in_workflow = await collect(nats_url, workflow_exec_id=wid, scope="workflow")
    in_activity = await collect(nats_url, workflow_exec_id=wid, activity_name="two_streams")
    other = await collect(nats_url, workflow_exec_id=wid, activity_name="something_else")
    assert types(in_workflow) == [
        EventType.WORKFLOW_EXECUTION_STARTED,
        EventType.WORKFLOW_EXECUTION_COMPLETED,
    ]
    assert len(in_activity) == 16 and other == []
    assert {e.activity_context.activity_name for e in in_activity} == {"two_streams"}
    (activity_id,) = {e.activity_context.activity_id for e in in_activity}
    by_id = await collect(nats_url, workflow_exec_id=wid, activity_id=activity_id)
    assert [e.broker_sequence for e in by_id] == [e.broker_sequence for e in in_activity]
    assert await collect(nats_url, workflow_exec_id=wid, activity_id=activity_id + "0") == []
    ending = [
        e
        async for e in subscribe(
            nats_url, workflow_exec_id=wid, activity_id=activity_id, until_complete=True
        )
    ]
    assert [e.broker_sequence for e in ending] == [e.broker_sequence for e in in_activity]


async def test_until_complete_with_an_activity_filter_still_ends(
    temporal_address, nats_url, task_queue
):
    """until_complete ends at the workflow's end even when only activity events are wanted."""
    wid = await run(temporal_address, nats_url, task_queue)
    events = [
        e
        async for e in subscribe(
            nats_url, workflow_exec_id=wid, activity_name="two_streams", until_complete=True
        )
    ]
    assert len(events) == 16 and all(e.activity_context for e in events)


async def test_until_caught_up_ends_after_what_is_stored(temporal_address, nats_url, task_queue):
    """until_caught_up stops after the last stored match, without waiting for silence, and
    at once when nothing matches; negative control: without it (and without an idle
    timeout) the same read is still waiting seconds later."""
    wid = await run(temporal_address, nats_url, task_queue)
    stored = await collect(nats_url, workflow_exec_id=wid)

    async def read(**options: object) -> list[int]:
        events = subscribe(nats_url, workflow_exec_id=wid, **options)
        return [e.broker_sequence async for e in events]

    caught_up = await asyncio.wait_for(read(until_caught_up=True), 5)
    assert caught_up == [e.broker_sequence for e in stored] and len(caught_up) > 10
    nothing = subscribe(nats_url, workflow_exec_id=unique("none"), until_caught_up=True)
    assert await asyncio.wait_for(_all(nothing), 5) == []
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(read(), 2)


async def _all(events) -> list[object]:  # type: ignore[no-untyped-def]
    return [e async for e in events]
