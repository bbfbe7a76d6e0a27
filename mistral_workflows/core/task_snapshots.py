"""When a task sends a snapshot of its state, for consumers that join late, and what it holds."""

from __future__ import annotations

from typing import Any

import orjson

from mistral_workflows.core.context import Channel, EventSink, FollowUp
from mistral_workflows.core.errors import PayloadTooLargeError
from mistral_workflows.core.events import EventType
from mistral_workflows.core.json_value import JSON

__all__ = ["Snapshots"]

_SNAPSHOT_MIN_BYTES = 16 * 1024
_SNAPSHOT_MAX_AGE_NS = 1_000_000_000
_IN_PROGRESS = EventType.CUSTOM_TASK_IN_PROGRESS


class Snapshots:
    """The snapshots of one task: at the start, at the end, and when the patches since the
    last snapshot outweigh the state (or a second has passed), so that they cost no more
    than the patches themselves, whatever the state's size."""

    def __init__(self, sink: EventSink, channel: Channel) -> None:
        self._sink = sink
        self._subject = channel.snapshot_subject
        self._clock = channel.clock
        self._unsnapshotted = 0
        self._bytes = 0
        self._at = 0

    def after(self, body: dict[str, Any], size: int, shadow: JSON) -> FollowUp | None:
        """The snapshot to send once the event `body` (`size` bytes) is stored, if one is
        due; `shadow` is the task's state as of that event."""
        return self._snapshot(body, shadow) if self._due(body, size) else None

    def _due(self, body: dict[str, Any], size: int) -> bool:
        if self._subject is None:
            return False
        now = self._clock()
        if body["data"]["event_type"] == _IN_PROGRESS:
            self._unsnapshotted += size
            due = self._unsnapshotted >= max(self._bytes, _SNAPSHOT_MIN_BYTES)
            if not due and now - self._at < _SNAPSHOT_MAX_AGE_NS:
                return False
        self._unsnapshotted, self._at = 0, now
        return True

    def _snapshot(self, body: dict[str, Any], shadow: JSON) -> FollowUp:
        """A copy of the task's state as of this event, sent once the event is stored,
        naming the sequence to resume reading from."""
        sink, subject = self._sink, self._subject
        assert subject is not None
        data = body["data"]
        attributes = dict(data["attributes"])
        if "payload" in attributes or data["event_type"] == _IN_PROGRESS:
            state = memoryview(orjson.dumps(shadow)).tobytes()  # exact size
            self._bytes = len(state)
            attributes["payload"] = {"type": "json", "value": orjson.Fragment(state)}
        msg_id = f"{data['event_id']}:snapshot"
        snapshot = {**body, "data": {**data, "event_id": msg_id, "attributes": attributes}}

        def build(seq: int) -> tuple[str, bytes, dict[str, str]] | None:
            snapshot["metadata"] = {"snapshot": True, "resume_seq": seq + 1}
            try:
                return (subject, *sink.encode(snapshot, msg_id, "snapshot", snapshot=True))
            except PayloadTooLargeError:
                return None  # The events still carry everything; only the shortcut is lost.

        return build
