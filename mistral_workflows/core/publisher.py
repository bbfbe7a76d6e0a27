"""Publishing to JetStream: pipelined, in order, deduplicated, and persisted before results.

Each activity attempt gets an `Emitter`. `emit` sends at once and returns without waiting
for the acknowledgement (a bounded window of in-flight messages gives backpressure);
`flush` waits until JetStream has stored every event, re-sending the unacknowledged ones
with their original message id, so a retried publish that was in fact stored is dropped by
JetStream's duplicate window instead of appearing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from mistral_workflows.core import subjects
from mistral_workflows.core.context import ActivityRef, ExecutionContext, FollowUp, scope_subject
from mistral_workflows.core.encoding import STATUS, encode_event
from mistral_workflows.core.encryption import Encryption
from mistral_workflows.core.errors import PayloadTooLargeError, PublishError

__all__ = ["ConnectionHooks", "Emitter", "Publisher"]

log = logging.getLogger("mistral_workflows")

# JetStream answers 503 while it has no leader (start-up, failover): worth retrying.
_RETRYABLE_API_CODES = frozenset({503})
_RESEND_PAUSE = 0.25
# The most an encrypted value adds beyond its base64 growth: wrapper, key id, nonce, tag.
_SEALED_OVERHEAD = 192


class Publisher:
    """The worker's JetStream publishing settings and connection.

    Args:
        nc: A connected NATS client.
        stream_name: The JetStream stream that captures `<prefix>.>`.
        prefix: The subject prefix.
        max_event_bytes: The event size limit, headers included.
        ack_timeout: How long to wait for one acknowledgement before re-sending.
        persist_timeout: How long an attempt may wait for all its events to be stored.
        max_in_flight: Unacknowledged messages allowed at once across the worker.
        strict: Raise `PublishError` when events cannot be stored (else log only).
        url: The server address to name in errors (without credentials).
        encryption: Encrypts the task state of every event (see `Encryption`).
    """

    def __init__(
        self,
        nc: NATS,
        *,
        url: str = "",
        stream_name: str,
        prefix: str,
        max_event_bytes: int,
        ack_timeout: float = 5.0,
        persist_timeout: float = 30.0,
        max_in_flight: int = 4096,
        strict: bool = True,
        encryption: Encryption | None = None,
    ) -> None:
        self.nc = nc
        self.max_in_flight = max_in_flight
        self.stream_name = stream_name
        self.prefix = prefix
        self.max_event_bytes = max_event_bytes
        self.ack_timeout = ack_timeout
        self.persist_timeout = persist_timeout
        self.strict = strict
        self.url = url
        self.encryption = encryption
        # Bumped on each reconnection: events sent before it may have been lost with the
        # old connection, and each emitter sends them again, in order, before newer ones.
        self.epoch = 0
        self._emitters: weakref.WeakSet[Emitter] = weakref.WeakSet()
        # Acknowledgements come to one inbox of ours, `<inbox>.<token>`, and are matched to
        # the events waiting for them here (lighter than a future per publish).
        self._inbox = ""
        self._inbox_lock = asyncio.Lock()
        self._tokens = itertools.count(1)
        self._in_flight: dict[str, tuple[_Pending, Emitter]] = {}
        self._has_room = asyncio.Event()
        self._has_room.set()

    def in_flight(self) -> int:
        """Events sent and not acknowledged yet, across the worker."""
        return len(self._in_flight)

    async def ack_inbox(self) -> str:
        """The subject prefix acknowledgements are sent to (subscribed on first use)."""
        if not self._inbox:
            async with self._inbox_lock:
                if not self._inbox:
                    inbox = f"{self.nc.new_inbox()}."
                    await self.nc.subscribe(f"{inbox}*", cb=self._on_ack)
                    self._inbox = inbox
        return self._inbox

    def track(self, entry: _Pending, emitter: Emitter) -> str:
        """Register `entry` as sent; returns the token its acknowledgement will carry."""
        token = str(next(self._tokens))
        entry.token = token
        self._in_flight[token] = (entry, emitter)
        if len(self._in_flight) >= self.max_in_flight:
            self._has_room.clear()
        return token

    def untrack(self, entry: _Pending) -> None:
        """Stop waiting for `entry`'s acknowledgement (it is sent again, or given up)."""
        if entry.token is not None:
            self._in_flight.pop(entry.token, None)
            entry.token = None
            if len(self._in_flight) < self.max_in_flight:
                self._has_room.set()

    async def _on_ack(self, msg: Msg) -> None:
        found = self._in_flight.pop(msg.subject[len(self._inbox) :], None)
        if found is None:
            return  # for an event sent again since, or given up
        entry, emitter = found
        entry.token = None
        entry.ack = _parse_ack(msg)
        if len(self._in_flight) < self.max_in_flight:
            self._has_room.set()
        emitter.progress.set()
        if entry.then is not None:
            emitter.follow_up_soon()

    async def wait_for_room(self, deadline: float, where: str) -> None:
        """Backpressure: wait until the window of unacknowledged events has room."""
        while len(self._in_flight) >= self.max_in_flight:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                await asyncio.wait_for(self._has_room.wait(), remaining)
            except TimeoutError:
                raise PublishError(
                    f"{self.max_in_flight} events have been waiting for JetStream "
                    f"acknowledgements on {where} for {self.persist_timeout:g}s; "
                    "is the NATS server reachable and keeping up?"
                ) from None

    def disconnected(self) -> None:
        """The connection was lost: drop the events still in nats-py's send buffer.

        nats-py would send them first on the new connection, ahead of older events that
        were written to the dead socket and lost: the emitters send both again, in order.
        """
        _drop_buffered_publishes(self.nc)

    def reconnected(self) -> None:
        """A new connection is up: every emitter re-sends its unacknowledged events."""
        self.epoch += 1
        for emitter in list(self._emitters):
            emitter.catch_up()

    @property
    def limit(self) -> int:
        """The largest event that can be sent: our limit or the server's, whichever is less."""
        server = self.nc.max_payload or self.max_event_bytes
        return min(self.max_event_bytes, server)

    def emitter(self, context: ExecutionContext | None, activity: ActivityRef | None) -> Emitter:
        """A new emitter for one activity attempt (context None: for ready-made subjects)."""
        emitter = Emitter(self, context, activity)
        self._emitters.add(emitter)
        return emitter


def _drop_buffered_publishes(nc: NATS) -> None:
    # nats-py keeps unsent protocol commands in `_pending`, one bytes object per command,
    # and has no public way to drop them. Only publishes are dropped (they are re-sent by
    # their emitters); subscriptions, pings and the rest are left alone.
    pending = getattr(nc, "_pending", None)
    if not isinstance(pending, list) or not hasattr(nc, "_pending_data_size"):
        log.warning(
            "mistral_workflows: this nats-py version hides its send buffer; events "
            "in flight during a reconnection may be stored out of order"
        )
        return
    kept = [cmd for cmd in pending if not cmd.startswith((b"PUB ", b"HPUB "))]
    pending[:] = kept
    nc._pending_data_size = sum(len(cmd) for cmd in kept)


_Callback = Callable[[], Awaitable[None]]


class ConnectionHooks:
    """nats-py connection callbacks for a `Publisher` that does not exist yet.

    Pass `options()` to `connect`, then set `publisher` once it is built. Callbacks of the
    same name given by the user are still called.
    """

    def __init__(self, user_options: dict[str, Any]) -> None:
        self.publisher: Publisher | None = None
        self._user_disconnected: _Callback | None = user_options.get("disconnected_cb")
        self._user_reconnected: _Callback | None = user_options.get("reconnected_cb")

    def options(self) -> dict[str, _Callback]:
        return {"disconnected_cb": self._disconnected, "reconnected_cb": self._reconnected}

    async def _disconnected(self) -> None:
        if self.publisher is not None:
            self.publisher.disconnected()
        if self._user_disconnected is not None:
            await self._user_disconnected()

    async def _reconnected(self) -> None:
        if self.publisher is not None:
            self.publisher.reconnected()
        if self._user_reconnected is not None:
            await self._user_reconnected()


@dataclass(slots=True)
class _Pending:
    subject: str
    payload: bytes
    headers: dict[str, str]
    then: FollowUp | None = None
    token: str | None = None  # while sent and waiting for its acknowledgement
    ack: int | Exception | None = None  # the stream sequence it was stored at, or the error


def _stored(entry: _Pending) -> bool:
    """Whether JetStream acknowledged the event (stored it, or had it already)."""
    return type(entry.ack) is int


def _parse_ack(msg: Msg) -> int | Exception:
    """The stream sequence in a JetStream publish acknowledgement, or the error it carries."""
    if msg.headers and msg.headers.get(STATUS) == "503":
        return nats.js.errors.NoStreamResponseError()
    try:
        answer = orjson.loads(msg.data)
        error = answer.get("error")
        if error:
            refused: Exception = nats.js.errors.APIError.from_error(error)
            return refused
        return int(answer["seq"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        return nats.errors.Error(f"unreadable acknowledgement {msg.data[:100]!r}: {e!r}")


class Emitter:
    """Sends the events of one activity attempt, in order, and waits until they are stored."""

    def __init__(
        self, publisher: Publisher, context: ExecutionContext | None, activity: ActivityRef | None
    ) -> None:
        self.publisher = publisher
        self.context = context
        self.activity = activity
        self._pending: deque[_Pending] = deque()
        self._subjects: dict[str, str] = {}
        self._room = asyncio.Lock()
        self._epoch = publisher.epoch
        self._catching_up: asyncio.Task[None] | None = None
        self.progress = asyncio.Event()  # set on each acknowledgement of one of ours
        self._following_up: asyncio.Task[None] | None = None

    def subject(self, stream: str) -> str:
        """The subject of this attempt's events on `stream` (built once per stream)."""
        subject = self._subjects.get(stream)
        if subject is None:
            assert self.context is not None, "this emitter sends to ready-made subjects only"
            subject = scope_subject(self.publisher.prefix, self.context, self.activity, stream)
            self._subjects[stream] = subject
        return subject

    @property
    def limit(self) -> int:
        """The largest event that can be sent, headers included."""
        return self.publisher.limit

    @property
    def coalesce(self) -> bool:
        """Updates made within one event-loop turn cannot reach the socket before the turn
        ends anyway: tasks fold them into one event."""
        return True

    def now_ns(self) -> int:
        """The event time: now, in Unix nanoseconds."""
        return time.time_ns()

    def encoded_size(self, size: int, values: int) -> int:
        """An upper bound of `size` bytes of JSON once encoded: encrypted values grow by a
        third (base64) plus their wrapper, key id, nonce and tag."""
        if self.publisher.encryption is None:
            return size
        return size * 4 // 3 + values * _SEALED_OVERHEAD

    def encode(self, body: dict[str, Any], msg_id: str, what: str) -> tuple[bytes, dict[str, str]]:
        """Serialise an event and check its size (see `encode_event`)."""
        publisher = self.publisher
        return encode_event(
            body, msg_id, publisher.stream_name, self.limit, what, publisher.encryption
        )

    def snapshot_subject(self, stream: str, task_id: str) -> str:
        """The subject of a task's snapshots."""
        return subjects.snapshot_subject(self.publisher.prefix, self.subject(stream), task_id)

    def encode_snapshot(
        self, body: dict[str, Any], msg_id: str
    ) -> tuple[bytes, dict[str, str]] | None:
        """Encode a snapshot for the snapshot stream; None if it is over the limit."""
        stream = subjects.snapshot_stream(self.publisher.stream_name)
        try:
            return encode_event(
                body, msg_id, stream, self.limit, "snapshot", self.publisher.encryption
            )
        except PayloadTooLargeError:
            return None  # The task's events still carry everything; only the shortcut is lost.

    async def send(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str],
        then: FollowUp | None = None,
    ) -> None:
        """Send one encoded event without waiting for its acknowledgement.

        `then` builds a message (a task snapshot) to send once this one is stored.
        """
        entry = _Pending(subject, payload, headers, then)
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
        head: _Pending | None = None
        head_since = 0.0
        while self._pending:
            entry = self._pending[0]
            ack = entry.ack
            if type(ack) is int:
                await self._follow_up(self._pending.popleft())
                continue
            if isinstance(ack, nats.js.errors.APIError) and ack.code not in _RETRYABLE_API_CODES:
                self._fail(f"JetStream refused an event: {ack}", ack)
                return
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

    async def _send(self, entry: _Pending) -> None:
        publisher = self.publisher
        if (
            self._room.locked()
            or self._epoch != publisher.epoch
            or publisher.in_flight() >= publisher.max_in_flight
        ):
            # One sender at a time, woken in order: events leave in the order they were sent.
            async with self._room:
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

    async def _resend_after_reconnection(self, before: _Pending | None) -> None:
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

    async def _publish(self, entry: _Pending) -> None:
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
            await publisher.nc.publish(
                entry.subject, entry.payload, reply=inbox + token, headers=entry.headers
            )
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
            self._epoch = self.publisher.epoch
            for entry in list(self._pending):
                if _stored(entry):
                    continue
                await self._wait_for_room()
                await self._publish(entry)

    async def _release_acknowledged(self) -> None:
        pending = self._pending
        while pending and type(pending[0].ack) is int:
            await self._follow_up(pending.popleft())

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

    async def _follow_up(self, entry: _Pending) -> None:
        if entry.then is None or type(entry.ack) is not int:
            return
        message = entry.then(entry.ack)
        if message is not None:
            entry = _Pending(*message)
            self._pending.append(entry)
            await self._send(entry)

    def _where(self) -> str:
        return f"stream {self.publisher.stream_name!r} at {self.publisher.url}"

    def _give_up(self, cause: BaseException | None) -> None:
        n = len(self._pending)
        self._fail(
            f"{n} event(s) were not acknowledged by JetStream ({self._where()}) within "
            f"{self.publisher.persist_timeout:g}s (last error: {cause!r}); the activity "
            "attempt fails so that Temporal retries it once NATS is back.",
            cause,
        )

    def _fail(self, message: str, cause: BaseException | None) -> None:
        self.discard()
        if self.publisher.strict:
            raise PublishError(message) from cause
        log.error("mistral_workflows: %s", message)
