"""Task snapshots for late joiners: the latest state of each task, and where to resume."""

from __future__ import annotations

from dataclasses import replace

import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext

from mistral_workflows.consumer._consumers import consumer_name, create_consumer, delete_consumer
from mistral_workflows.core import subjects
from mistral_workflows.core.connection import denied
from mistral_workflows.core.errors import BrokerConnectionError
from mistral_workflows.core.events import EventType, StreamEvent
from mistral_workflows.core.filter import EventFilter

__all__ = ["Snapshots", "backfill", "read_snapshots"]

_FETCH = 256
# A task whose latest snapshot has one of these types has events after it to read.
_RUNNING = (EventType.CUSTOM_TASK_STARTED, EventType.CUSTOM_TASK_IN_PROGRESS)
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
            int(e.metadata["resume_seq"]) for e in self.events if e.data.event_type in _RUNNING
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
    between that snapshot and `event` (read from the task's own subject).

    A worker writes a snapshot once its event is stored, which can be after the task's next
    event: without a snapshot yet, the task's events are read from the start of its subject.
    """
    task_id = _task_id(event)
    assert task_id is not None
    snapshot_subject = subjects.snapshot_subject(prefix, subject, task_id)
    stream = subjects.snapshot_stream(stream_name)
    found = await _read(nc, stream, _config(snapshot_subject, DeliverPolicy.LAST))
    missed: list[StreamEvent] = []
    seq, floor = 1, (0, -1)
    if found:
        snapshot = StreamEvent.model_validate(orjson.loads(found[-1].data))
        missed.append(snapshot)
        seq, floor = int(snapshot.metadata.get("resume_seq", 0)), _rank(snapshot)
    end = event.broker_sequence or 0
    if not seq or seq >= end:
        return missed
    config = _config(subject, DeliverPolicy.BY_START_SEQUENCE, seq)
    for msg in await _read(nc, stream_name, config, before=end):
        later = StreamEvent.model_validate(orjson.loads(msg.data))
        later.broker_sequence = msg.metadata.sequence.stream
        if _task_id(later) == task_id and _rank(later) > floor:
            missed.append(later)
    return missed


async def read_snapshots(nc: NATS, stream_name: str, prefix: str, wanted: EventFilter) -> Snapshots:
    """Read the latest snapshot of every task of the executions and stream `wanted` names.

    A snapshot's subject has one more token (the task id) than its event's, which a scoped
    subject filter would not match: scope, activity and event types are left to the caller.
    """
    tasks = replace(wanted, scope=None, activity_name=None, activity_id=None, event_types=None)
    config = _config(
        tasks.subject(subjects.snapshot_prefix(prefix)), DeliverPolicy.LAST_PER_SUBJECT
    )
    found = await _read(nc, subjects.snapshot_stream(stream_name), config)
    return Snapshots([StreamEvent.model_validate(orjson.loads(m.data)) for m in found])


def _config(filter_: str, policy: DeliverPolicy, start: int | None = None) -> ConsumerConfig:
    return ConsumerConfig(
        name=consumer_name(),
        filter_subject=filter_,
        deliver_policy=policy,
        opt_start_seq=start,
        ack_policy=AckPolicy.NONE,
        mem_storage=True,
        num_replicas=1,
        inactive_threshold=30.0,
    )


async def _read(
    nc: NATS, stream: str, config: ConsumerConfig, before: int | None = None
) -> list[Msg]:
    """What a new consumer `config` has pending now (up to sequence `before`); nothing if the
    stream does not exist."""
    try:
        info = await create_consumer(nc, stream, config)
    except nats.js.errors.NotFoundError:
        return []
    name = str(config.name)
    sub = await nc.jetstream().pull_subscribe_bind(name, stream=stream)
    found: list[Msg] = []
    pending = info.num_pending
    try:
        while pending:
            for msg in await _fetch(nc, sub, min(_FETCH, pending), f"{stream}.{name}"):
                if before is not None and msg.metadata.sequence.stream >= before:
                    return found
                found.append(msg)
                pending = msg.metadata.num_pending
    finally:
        await sub.unsubscribe()
        await delete_consumer(nc, stream, name)
    return found


async def _fetch(
    nc: NATS, sub: JetStreamContext.PullSubscription, n: int, consumer: str
) -> list[Msg]:
    before = nc.last_error
    try:
        return await sub.fetch(n, timeout=_WAIT)
    except nats.errors.TimeoutError:
        pull = f"$JS.API.CONSUMER.MSG.NEXT.{consumer}"
        violation = denied(nc, before, pull)
        if violation is None:
            raise
        raise BrokerConnectionError(
            f"NATS refused to deliver {consumer} ({violation}): the NATS user needs "
            f"permission to publish on {pull} and to subscribe to its reply inbox; see "
            "docs/security.md for the permissions consumers need"
        ) from None
