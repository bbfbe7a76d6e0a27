"""The per-attempt side of publishing: an `Emitter` sends one activity attempt's events in
order, and waits until JetStream has stored them all.

`send` sends at once and returns without waiting for the acknowledgement (the publisher's
bounded window of in-flight messages gives backpressure); `flush` waits until every event is
stored, re-sending the unacknowledged ones with their original message id, so a retried
publish that was in fact stored is dropped by JetStream's duplicate window instead of
appearing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import nats.errors
import nats.js.errors

from mistral_workflows.core import subjects
from mistral_workflows.core.context import (
    ActivityRef,
    Channel,
    ExecutionContext,
    FollowUp,
    scope_subject,
)
from mistral_workflows.core.encoding import encode_event
from mistral_workflows.core.errors import PublishError
from mistral_workflows.core.refusal import Refusal, refused

if TYPE_CHECKING:
    from mistral_workflows.core.publisher import Publisher

__all__ = ["Emitter", "Pending"]

log = logging.getLogger("mistral_workflows")

_RESEND_PAUSE = 0.25


@dataclass(slots=True)
class Pending:
    """One event of an emitter, from its first send until it is stored (or given up)."""

    subject: str
    payload: bytes
    headers: dict[str, str]
    then: FollowUp | None = None
    snapshot: bool = False  # for the snapshot stream: best effort, never fails an attempt
    token: str | None = None  # while sent and waiting for its acknowledgement
    ack: int | Exception | None = None  # the stream sequence it was stored at, or the error


def _stored(entry: Pending) -> bool:
    """Whether JetStream acknowledged the event (stored it, or had it already)."""
    return type(entry.ack) is int


def _settled(entry: Pending) -> bool:
    """Stored, or a snapshot that failed: given up without failing anything."""
    return type(entry.ack) is int or (entry.snapshot and isinstance(entry.ack, Exception))


class Emitter:
    """Sends the events of one activity attempt, in order, and waits until they are stored."""

    def __init__(
        self,
        publisher: Publisher,
        context: ExecutionContext | None,
        activity: ActivityRef | None,
        *,
        strict: bool | None = None,
    ) -> None:
        self.publisher = publisher
        # Raise PublishError when events cannot be stored (None: as the publisher says).
        self.strict = publisher.strict if strict is None else strict
        self.context = context
        self.activity = activity
        self._pending: deque[Pending] = deque()
        self._subjects: dict[str, str] = {}
        self._room = asyncio.Lock()
        self._epoch = publisher.epoch
        self._catching_up: asyncio.Task[None] | None = None
        self.progress = asyncio.Event()  # set on each acknowledgement of one of ours
        self._following_up: asyncio.Task[None] | None = None
        # Set once JetStream refused one of our events for good: the next send fails.
        self._refusal = Refusal(
            self._where(), publisher.generation(publisher.stream_name), strict=self.strict
        )
        self._restoring: asyncio.Task[None] | None = None

    def channel(self, stream: str, task_id: str | None = None) -> Channel:
        """Where this attempt's events on `stream` go (and that task's snapshots)."""
        publisher, subject = self.publisher, self._subject(stream)
        snapshots = None
        if task_id is not None:
            snapshots = subjects.snapshot_subject(publisher.prefix, subject, task_id)
        return Channel(
            subject=subject,
            snapshot_subject=snapshots,
            limit=publisher.limit,
            coalesce=publisher.max_delay > 0,
            clock=time.time_ns,
            encrypted=publisher.encryption is not None,
            max_delay_ns=int(publisher.max_delay * 1e9),
            busy=self.busy,
            unacknowledged=self.unacknowledged,
            hand_over=publisher.hand_over,
        )

    def unacknowledged(self) -> bool:
        """Whether the last event sent still waits for its acknowledgement."""
        pending = self._pending
        return bool(pending) and pending[-1].ack is None

    def busy(self) -> bool:
        """Whether an event sent now would wait before going out: the window of
        unacknowledged events is full, an earlier event is waiting for room, or the events
        lost with a connection are to be sent again first."""
        publisher = self.publisher
        return (
            self._room.locked()
            or self._epoch != publisher.epoch
            or publisher.in_flight() >= publisher.max_in_flight
        )

    def encode(
        self, body: dict[str, Any], msg_id: str, what: str, *, snapshot: bool = False
    ) -> tuple[bytes, dict[str, str]]:
        """Serialise an event (a snapshot: for the snapshot stream) and check its size
        (see `encode_event`)."""
        publisher = self.publisher
        stream = publisher.stream_name
        if snapshot:
            stream = subjects.snapshot_stream(stream)
        return encode_event(body, msg_id, stream, publisher.limit, what, publisher.encryption)

    async def send(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str],
        then: FollowUp | None = None,
    ) -> None:
        """Send one encoded event without waiting for its acknowledgement.

        `then` builds a message (a task snapshot) to send once this one is stored.

        Raises:
            PublishError: JetStream refused an earlier event for good (a full stream, a
                deleted one), so this one cannot be stored either (only when strict).
        """
        self._raise_refusal()
        entry = Pending(subject, payload, headers, then)
        self._pending.append(entry)
        await self._send(entry)
        await self._release_acknowledged()

    async def flush(self) -> None:
        """Wait until JetStream has stored every event sent so far, re-sending as needed.

        Raises:
            PublishError: some events were not stored within the persist timeout (only
                when the publisher is strict; otherwise the problem is logged).
        """
        publisher = self.publisher
        deadline = time.monotonic() + publisher.persist_timeout
        last_error: BaseException | None = None
        head: Pending | None = None
        head_since = 0.0
        while self._pending:
            if self._refusal.reason is not None:
                self._fail(*self._refusal.reason)
                return
            entry = self._pending[0]
            ack = entry.ack
            if _settled(entry):
                await self._follow_up(self._pending.popleft())
                continue
            if refused(ack):
                self._refusal.event_refused(ack)
                continue
            now = time.monotonic()
            if now >= deadline:
                self._give_up(last_error)
                return
            if entry is not head:
                head, head_since = entry, now
            waited = now - head_since
            if ack is None and entry.token is not None and waited < publisher.ack_timeout:
                self.progress.clear()
                wait = min(publisher.ack_timeout - waited, deadline - now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.progress.wait(), wait)
                continue
            if self._restoring is not None:  # the stream was missing: re-sent once it is back
                await self._restoring
                continue
            # Not sent (disconnected), refused for now, or no acknowledgement in time.
            if isinstance(ack, Exception):
                last_error = ack
            else:
                sent = entry.token is not None
                last_error = TimeoutError("no acknowledgement" if sent else "not sent yet")
            await self._resend_all()
            head = None

    def discard(self) -> None:
        """Stop waiting for acknowledgements (the events may or may not be stored)."""
        for entry in self._pending:
            self.publisher.untrack(entry)
        self._pending.clear()

    async def _send(self, entry: Pending) -> None:
        if self.busy():
            # One sender at a time, woken in order: events leave in the order they were sent.
            async with self._room:
                if not entry.snapshot:
                    self._raise_refusal()
                await self._resend_after_reconnection(entry)
                await self._wait_for_room()
                await self._publish(entry)
            return
        await self._publish(entry)

    def catch_up(self) -> None:
        """After a reconnection, send the unacknowledged events again without waiting for
        the next event or the flush."""
        if self._pending and self._catching_up is None:
            self._catching_up = asyncio.ensure_future(self._catch_up())

    async def _catch_up(self) -> None:
        try:
            async with self._room:
                await self._resend_after_reconnection(None)
        except Exception as e:  # the flush re-sends and reports
            log.debug("mistral_workflows: re-sending after a reconnection: %r", e)
        finally:
            self._catching_up = None

    async def _resend_after_reconnection(self, before: Pending | None) -> None:
        """Send again, in order, every event up to `before` that may have been lost with
        an earlier connection (JetStream drops those that were stored, by message id)."""
        if self._epoch == self.publisher.epoch:
            return
        self._epoch = self.publisher.epoch
        for entry in list(self._pending):
            if entry is before:
                return
            if not _stored(entry):
                await self._wait_for_room()
                await self._publish(entry)

    async def _publish(self, entry: Pending) -> None:
        publisher = self.publisher
        publisher.untrack(entry)  # sent again: an acknowledgement of the old send is moot
        entry.ack = None
        if not publisher.nc.is_connected:
            # Not into nats-py's reconnection buffer, which would send it ahead of older
            # events lost with the connection: it is sent again once reconnected.
            return
        inbox = await publisher.ack_inbox()
        token = publisher.track(entry, self)
        try:
            await publisher.publish(entry.subject, entry.payload, inbox + token, entry.headers)
        except nats.errors.Error:
            # Disconnected with a full reconnect buffer: `flush` sends it again.
            publisher.untrack(entry)

    async def _wait_for_room(self) -> None:
        publisher = self.publisher
        if publisher.in_flight() >= publisher.max_in_flight:
            await publisher.wait_for_room(
                time.monotonic() + publisher.persist_timeout, self._where()
            )

    async def _resend_all(self) -> None:
        """Send every unacknowledged event again, in order, with its original message id."""
        await asyncio.sleep(_RESEND_PAUSE)
        async with self._room:
            await self._resend_unsettled()

    async def _resend_unsettled(self) -> None:
        self._epoch = self.publisher.epoch
        for entry in list(self._pending):
            if not _settled(entry):
                await self._wait_for_room()
                await self._publish(entry)

    async def _release_acknowledged(self) -> None:
        pending = self._pending
        while pending and _settled(pending[0]):
            await self._follow_up(pending.popleft())

    def acknowledged(self, entry: Pending) -> None:
        """JetStream answered for `entry` (its `ack` is set): act on what the answer means."""
        self.progress.set()
        ack = entry.ack
        if type(ack) is int:
            self._refusal.stored_any |= not entry.snapshot
            if entry.then is not None:
                self.follow_up_soon()
        elif isinstance(ack, nats.js.errors.NoStreamResponseError):
            if self._restoring is None and self._refusal.reason is None:
                self._restoring = asyncio.ensure_future(self._restore(entry.snapshot))
        elif refused(ack) and not entry.snapshot:
            self._refusal.event_refused(ack)

    async def _restore(self, snapshot: bool) -> None:
        """No stream answered a publish: have the stream checked (and created again where
        the plugin provisions streams), then send the events again, in order."""
        publisher = self.publisher
        stream = publisher.stream_name
        if snapshot:
            stream = subjects.snapshot_stream(stream)
        try:
            async with self._room:
                state = await publisher.restore(stream)
                if not snapshot:
                    self._refusal.stream_checked(stream, state, publisher.generation(stream))
                if self._refusal.reason is None:
                    if state == "exists":  # answered by no stream for a moment: not too fast
                        await asyncio.sleep(_RESEND_PAUSE)
                    await self._resend_unsettled()
        except Exception as e:  # the flush re-sends and reports
            log.warning("mistral_workflows: checking stream %r: %r", stream, e)
        finally:
            self._restoring = None

    def _raise_refusal(self) -> None:
        self._refusal.raise_if_any(self.publisher.generation(self.publisher.stream_name))

    def follow_up_soon(self) -> None:
        """An event with a follow-up (a task snapshot) was stored: send the follow-up now,
        not at the task's next event, which may be long in coming (a paused stream)."""
        if self._following_up is None:
            self._following_up = asyncio.ensure_future(self._follow_up_now())

    async def _follow_up_now(self) -> None:
        try:
            await self._release_acknowledged()
        except Exception as e:  # the flush sends it again and reports
            log.debug("mistral_workflows: sending a snapshot: %r", e)
        finally:
            self._following_up = None

    async def _follow_up(self, entry: Pending) -> None:
        if entry.then is None or type(entry.ack) is not int:
            return
        message = entry.then(entry.ack)
        if message is not None:
            entry = Pending(*message, snapshot=True)
            self._pending.append(entry)
            await self._send(entry)

    def _where(self) -> str:
        return f"stream {self.publisher.stream_name!r} at {self.publisher.url}"

    def _give_up(self, cause: BaseException | None) -> None:
        n = sum(not entry.snapshot for entry in self._pending)
        if n == 0:  # snapshots are a shortcut for late joiners: never worth failing for
            log.warning("mistral_workflows: snapshots not stored in time (%r)", cause)
            self.discard()
            return
        self._fail(
            f"{n} event(s) were not acknowledged by JetStream ({self._where()}) within "
            f"{self.publisher.persist_timeout:g}s (last error: {cause!r}); the activity "
            "attempt fails so that Temporal retries it once NATS is back.",
            cause,
        )

    def _fail(self, message: str, cause: BaseException | None) -> None:
        self.discard()
        if self.strict:
            raise PublishError(message) from cause
        log.error("mistral_workflows: %s", message)

    def _subject(self, stream: str) -> str:
        """The subject of this attempt's events on `stream` (built once per stream)."""
        subject = self._subjects.get(stream)
        if subject is None:
            assert self.context is not None, "this emitter sends to ready-made subjects only"
            subject = scope_subject(self.publisher.prefix, self.context, self.activity, stream)
            self._subjects[stream] = subject
        return subject
