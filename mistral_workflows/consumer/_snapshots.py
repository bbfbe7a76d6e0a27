"""Task snapshots for late joiners: the latest state of each task, and where to resume."""

from __future__ import annotations

from collections.abc import Mapping

import nats.js.errors
import orjson
from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from mistral_workflows.core import subjects
from mistral_workflows.core.events import StreamEvent

__all__ = ["Snapshots", "read_snapshots"]

_FETCH = 256
_WAIT = 1.0


class Snapshots:
    """The latest snapshot of each matching task, newest attempt first."""

    def __init__(self, events: list[StreamEvent]) -> None:
        self._latest: dict[str, StreamEvent] = {}
        for event in events:
            self.add(event)
        self.events = list(self._latest.values())

    def add(self, event: StreamEvent) -> None:
        """Take a snapshot into account (found later, while reading)."""
        key = _task_id(event)
        if key is not None and (key not in self._latest or _rank(event) > _rank(self._latest[key])):
            self._latest[key] = event

    def knows(self, event: StreamEvent) -> bool:
        """Whether the task of `event` has a snapshot here."""
        return _task_id(event) in self._latest

    def resume_seq(self, default: int) -> int:
        """Where to read events from: right after the oldest snapshot of a running task."""
        running = [
            int(e.metadata["resume_seq"])
            for e in self.events
            if e.data.event_type in ("CUSTOM_TASK_STARTED", "CUSTOM_TASK_IN_PROGRESS")
        ]
        return min(running, default=default)

    def covers(self, event: StreamEvent) -> bool:
        """Whether `event` is already reflected in a snapshot (or is of an older attempt)."""
        snapshot = self._latest.get(_task_id(event) or "")
        return snapshot is not None and _rank(event) <= _rank(snapshot)


def _task_id(event: StreamEvent) -> str | None:
    task_id = getattr(getattr(event.data, "attributes", None), "custom_task_id", None)
    return task_id if isinstance(task_id, str) else None


def _rank(event: StreamEvent) -> tuple[int, int]:
    attempt = event.activity_context.attempt if event.activity_context else 1
    seq = getattr(event.data.attributes, "task_sequence", None)
    return attempt, -1 if seq is None else seq


async def backfill(
    nc: NATS, stream_name: str, prefix: str, subject: str, event: StreamEvent
) -> list[StreamEvent]:
    """What a late joiner missed of the task of `event`: its snapshot, then its events
    between that snapshot and `event` (read from the task's own subject)."""
    js = nc.jetstream()
    task_id = _task_id(event)
    assert task_id is not None
    snapshot_subject = subjects.snapshot_subject(prefix, subject, task_id)
    try:
        raw = await js.get_last_msg(subjects.snapshot_stream(stream_name), snapshot_subject)
    except nats.js.errors.NotFoundError:
        return []
    assert raw.data is not None
    snapshot = StreamEvent.model_validate(orjson.loads(raw.data))
    missed = [snapshot]
    seq = int(snapshot.metadata.get("resume_seq", 0))
    while seq and seq < (event.broker_sequence or 0):
        try:
            raw = await js.get_msg(stream_name, seq=seq, next=True, subject=subject)
        except nats.js.errors.NotFoundError:
            break
        if raw.seq is None or raw.seq >= (event.broker_sequence or 0) or raw.data is None:
            break
        found = StreamEvent.model_validate(orjson.loads(raw.data))
        found.broker_sequence = raw.seq
        if _task_id(found) == task_id and _rank(found) > _rank(snapshot):
            missed.append(found)
        seq = raw.seq + 1
    return missed


async def read_snapshots(
    nc: NATS, stream_name: str, prefix: str, ids: Mapping[str, str | None]
) -> Snapshots:
    """Read the latest snapshot of every task whose subject matches `ids`."""
    js = nc.jetstream()
    stream = subjects.snapshot_stream(stream_name)
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        ack_policy=AckPolicy.NONE,
        mem_storage=True,
        inactive_threshold=30.0,
    )
    filter_ = subjects.filter_subject(subjects.snapshot_prefix(prefix), **ids)
    try:
        sub = await js.pull_subscribe(filter_, stream=stream, config=config)
    except nats.js.errors.NotFoundError:
        return Snapshots([])
    events: list[StreamEvent] = []
    try:
        pending = (await sub.consumer_info()).num_pending
        while pending:
            for msg in await sub.fetch(min(_FETCH, pending), timeout=_WAIT):
                event = StreamEvent.model_validate(orjson.loads(msg.data))
                events.append(event)
                pending = msg.metadata.num_pending
    finally:
        await sub.unsubscribe()
    return Snapshots(events)
