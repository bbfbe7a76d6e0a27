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
        latest: dict[str, StreamEvent] = {}
        for event in events:
            key = event.data.attributes.custom_task_id  # type: ignore[union-attr]
            if key not in latest or _rank(event) > _rank(latest[key]):
                latest[key] = event
        self.events = list(latest.values())

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
        attrs = getattr(event.data, "attributes", None)
        task_id = getattr(attrs, "custom_task_id", None)
        if task_id is None:
            return False
        for snapshot in self.events:
            if snapshot.data.attributes.custom_task_id == task_id:  # type: ignore[union-attr]
                return _rank(event) <= _rank(snapshot)
        return False


def _rank(event: StreamEvent) -> tuple[int, int]:
    attempt = event.activity_context.attempt if event.activity_context else 1
    seq = getattr(event.data.attributes, "task_sequence", None)
    return attempt, -1 if seq is None else seq


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
