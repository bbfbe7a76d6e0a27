"""Publishing to JetStream: pipelined, in order, deduplicated, and persisted before results.

The worker's `Publisher` holds the connection, the settings and the window of events
waiting for their acknowledgement, which all come to one inbox. Each activity attempt gets
an `Emitter` (`emitter.py`) that sends its events in order and waits until they are stored.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from mistral_workflows.core.context import ActivityRef, ExecutionContext
from mistral_workflows.core.emitter import Emitter, Pending
from mistral_workflows.core.encoding import STATUS
from mistral_workflows.core.encryption import Encryption
from mistral_workflows.core.errors import PublishError
from mistral_workflows.core.metrics import NO_METRICS, PublishMetrics
from mistral_workflows.core.refusal import StreamState
from mistral_workflows.core.tracecontext import TraceHeaders

__all__ = ["ConnectionHooks", "Publisher"]

log = logging.getLogger("mistral_workflows")

# A write of the send buffer scheduled less than this long ago (ns) waits for one more
# loop turn, to take the events of that turn along.
_GATHER_NS = 300_000


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
        restore: Called with a stream's name when a publish found no stream: checks it,
            creates it again where allowed, and says which (see `StreamState`). Without
            it, the stream is taken to exist and the events are re-sent.
        max_delay: Seconds a task may hold an update to fold it with later ones before
            it is handed to the socket; 0 sends one event per update.
        trace: Returns the W3C trace headers of the current span, added to each event
            (see `tracecontext.py`); None: no trace context is sent.
        metrics: Where the publishing figures go (see `metrics.py`); default: nowhere.
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
        restore: Callable[[str], Awaitable[StreamState]] | None = None,
        max_delay: float = 0.025,
        trace: TraceHeaders | None = None,
        metrics: PublishMetrics = NO_METRICS,
    ) -> None:
        self.nc = nc
        self.max_delay = max_delay
        self.trace = trace
        self.metrics = metrics
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
        self._in_flight: dict[str, tuple[Pending, Emitter]] = {}
        self._has_room = asyncio.Event()
        self._has_room.set()
        self._restore = restore
        self._restoring = asyncio.Lock()
        self._generations: dict[str, int] = {}  # how often each stream was created again
        # nats-py's publish re-checks the subject and every header on each call (a regex per
        # key): most of a small event's send cost. Ours are built and checked once by the
        # library, so the command is built here, as nats-py builds it, when nats-py has the
        # buffer this relies on.
        self._fast = all(
            hasattr(nc, name)
            for name in ("_send_command", "_flush_queue", "_pending", "_transport")
        )
        self._write_due = 0  # when a write of nats-py's send buffer was scheduled

    def generation(self, stream: str) -> int:
        """How many times the worker created `stream` again after finding it gone."""
        return self._generations.get(stream, 0)

    async def restore(self, stream: str) -> StreamState:
        """A publish to `stream` found no stream: check it, one emitter at a time, and
        create it again where the plugin may (bumping its `generation`)."""
        if self._restore is None:
            return "exists"
        async with self._restoring:
            state = await self._restore(stream)
            if state == "created":
                self._generations[stream] = self.generation(stream) + 1
                log.warning("mistral_workflows: stream %r was gone; created it again", stream)
        return state

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

    def track(self, entry: Pending, emitter: Emitter) -> str:
        """Register `entry` as sent; returns the token its acknowledgement will carry."""
        token = str(next(self._tokens))
        entry.token = token
        self._in_flight[token] = (entry, emitter)
        self.metrics.in_flight(len(self._in_flight))
        if len(self._in_flight) >= self.max_in_flight:
            self._has_room.clear()
        return token

    def untrack(self, entry: Pending) -> None:
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
        entry.ack = ack = _parse_ack(msg)
        if type(ack) is int:
            self.metrics.acknowledged(entry.sent_at)
        if len(self._in_flight) < self.max_in_flight:
            self._has_room.set()
        emitter.acknowledged(entry)

    async def wait_for_room(self, deadline: float, where: str) -> None:
        """Backpressure: wait until the window of unacknowledged events has room."""
        if len(self._in_flight) >= self.max_in_flight:
            self.metrics.window_full()
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

    async def publish(
        self, subject: str, payload: bytes, reply: str, headers: dict[str, str]
    ) -> None:
        """Send one message with headers: `nc.publish`, without its per-call checks.

        Raises:
            nats.errors.Error: as `nc.publish` (closed, draining, disconnected with a full
                reconnection buffer).
        """
        nc = self.nc
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        # One line break per header, or a value holds one: nats-py's path cleans it up.
        if (
            not self._fast
            or not nc.is_connected
            or nc.is_draining_pubs
            or lines.count("\n") != len(headers)
        ):
            await nc.publish(subject, payload, reply=reply, headers=headers)
            return
        hdr = f"NATS/1.0\r\n{lines}\r\n".encode()
        size = len(hdr) + len(payload)
        command = b"".join(
            (f"HPUB {subject} {reply} {len(hdr)} {size}\r\n".encode(), hdr, payload, b"\r\n")
        )
        nc.stats["out_msgs"] += 1
        nc.stats["out_bytes"] += len(payload)
        await nc._send_command(command)
        if not self._write_due:
            # Written once the callbacks of this loop turn have run, with every command
            # buffered by then: lighter than kicking nats-py's flusher task (a future and
            # a queue per publish, and a task step).
            self._write_due = time.monotonic_ns()
            asyncio.get_running_loop().call_soon(self._write, True)

    def _write(self, first: bool) -> None:
        if first and time.monotonic_ns() - self._write_due < _GATHER_NS:
            # The loop turns fast: one turn more gathers the next events into the same
            # system call (a write per event is most of a small event's CPU cost).
            asyncio.get_running_loop().call_soon(self._write, False)
            return
        self._write_due = 0
        nc = self.nc
        _write_buffered(nc)
        if nc._pending and nc._flush_queue is not None and nc._flush_queue.empty():
            # Not written (reconnecting, or no transport to write to): nats-py's flusher
            # knows what to do.
            nc._flush_queue.put_nowait(asyncio.get_running_loop().create_future())

    def hand_over(self) -> None:
        """Write nats-py's send buffer to the socket now.

        nats-py writes it from a task of its own, which runs only when the event loop
        turns: a producer that does not yield would hold its events in the buffer.
        """
        _write_buffered(self.nc)

    def reconnected(self) -> None:
        """A new connection is up: every emitter re-sends its unacknowledged events."""
        self.epoch += 1
        self.metrics.reconnected()
        for emitter in list(self._emitters):
            emitter.catch_up()

    @property
    def limit(self) -> int:
        """The largest event that can be sent: our limit or the server's, whichever is less."""
        server = self.nc.max_payload or self.max_event_bytes
        return min(self.max_event_bytes, server)

    def emitter(
        self,
        context: ExecutionContext | None,
        activity: ActivityRef | None,
        *,
        strict: bool | None = None,
    ) -> Emitter:
        """A new emitter for one activity attempt (context None: for ready-made subjects);
        `strict` overrides the publisher's for this emitter."""
        emitter = Emitter(self, context, activity, strict=strict)
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


def _write_buffered(nc: NATS) -> None:
    # What nats-py's flusher task does when the loop turns, done now, in order; the
    # flusher then finds the buffer empty. Like `_drop_buffered_publishes`, this relies on
    # `_pending`: without it, the events wait for the loop as before.
    pending = getattr(nc, "_pending", None)
    transport = getattr(nc, "_transport", None)
    if not pending or transport is None or not nc.is_connected or not isinstance(pending, list):
        return
    try:
        transport.writelines(pending)
    except (OSError, RuntimeError, AttributeError) as e:  # the flusher will meet it too
        log.debug("mistral_workflows: writing to the socket: %r", e)
        return
    nc._pending = []
    nc._pending_data_size = 0


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


def _parse_ack(msg: Msg) -> int | Exception:
    """The stream sequence in a JetStream publish acknowledgement, or the error it carries."""
    if msg.headers and msg.headers.get(STATUS) == "503":
        return nats.js.errors.NoStreamResponseError()
    try:
        answer = orjson.loads(msg.data)
        error = answer.get("error")
        if error:
            return _api_error(error)
        return int(answer["seq"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        return nats.errors.Error(f"unreadable acknowledgement {msg.data[:100]!r}: {e!r}")


def _api_error(error: dict[str, Any]) -> Exception:
    """The error a JetStream answer carries. nats-py's `APIError.from_error` raises the
    error of a known code (503, 500, 400...) instead of returning it."""
    try:
        known: Exception = nats.js.errors.APIError.from_error(error)
        return known
    except nats.js.errors.APIError as e:
        return e
