"""One SSE client of a shared read: it catches up on its own, joins its hub, and is cut loose
(to catch up on its own again) when it cannot keep up.

A viewer is in one of two modes. Joined, its hub hands it the hub's batches, which it
writes at once or queues in its byte-bounded buffer (see `_writer`), without waiting. On
its own, it reads with a JetStream consumer of its own from its position, waiting for room
in its buffer as a lone reader does; it does so when it starts from an older position than
the hub's history holds, and when its buffer filled up while joined. It joins (again) once
its hub holds every event from its position on, so that nothing is lost or repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Hashable

import orjson
from nats.aio.client import Client as NATS

from mistral_workflows.consumer import Gap
from mistral_workflows.consumer._reader import Reader
from mistral_workflows.core.errors import MistralWorkflowsError
from mistral_workflows.core.events import StreamEvent
from mistral_workflows.core.filter import EventFilter
from mistral_workflows.gateway._batch import Batch
from mistral_workflows.gateway._fanout import Hub, Hubs, decode, stop_task
from mistral_workflows.gateway._outbox import Outbox, ReadAhead
from mistral_workflows.gateway._query import StreamQuery
from mistral_workflows.gateway._sse import RETRY_MS, error_message, event_message, gap_message
from mistral_workflows.gateway._writer import END, Writer, WriterStream

__all__ = ["Fanout", "Viewer"]

log = logging.getLogger("mistral_workflows.gateway")

_RETRY = f"retry: {RETRY_MS}\n".encode()
_KEEPALIVE = b": keep-alive\n\n"
_BEHIND = (
    b": behind: this client reads slower than events come; reading on for it on its own "
    b"until it catches up\n\n"
)


class Fanout:
    """The shared reads of one gateway, and the keep-alive comments of its viewers."""

    def __init__(
        self,
        nc: Callable[[], NATS],
        stream: str,
        prefix: str,
        bounds: ReadAhead,
        keepalive: float,
    ) -> None:
        self.nc = nc
        self.stream = stream
        self.prefix = prefix
        self.bounds = bounds
        self.hubs = Hubs(nc, stream, bounds)
        self._keepalive = keepalive
        self._viewers: dict[Viewer, None] = {}
        self._ticker: asyncio.Task[None] | None = None

    def viewer(self, wanted: EventFilter, query: StreamQuery) -> Viewer:
        """A viewer of the events `wanted` and `query` keep, from `query.start_seq` on."""
        metadata = orjson.dumps(query.metadata, option=orjson.OPT_SORT_KEYS)

        def keeps(event: StreamEvent) -> bool:
            return wanted.matches(event) and query.keeps(event)

        return Viewer(self, wanted.subject(self.prefix), (wanted, metadata), keeps, query.start_seq)

    def add(self, viewer: Viewer) -> None:
        self._viewers[viewer] = None
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick())

    def discard(self, viewer: Viewer) -> None:
        self._viewers.pop(viewer, None)

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker

    async def _tick(self) -> None:
        """Send a keep-alive comment to each viewer that was sent nothing for a while."""
        while True:
            await asyncio.sleep(self._keepalive)
            for viewer in self._viewers:
                writer = viewer.writer
                if writer.quiet:
                    writer.queue(_KEEPALIVE, len(_KEEPALIVE))
                writer.quiet = True


class Viewer:
    """One client's events (see the module's docstring)."""

    def __init__(
        self,
        fanout: Fanout,
        subject: str,
        key: Hashable,
        keeps: Callable[[StreamEvent], bool],
        start: int | None,
    ) -> None:
        self.next = start or 0
        self.writer = Writer(Outbox(fanout.bounds))
        self._fanout = fanout
        self._subject = subject
        self._key = key
        self._keeps = keeps
        self._first = True
        self._hub: Hub | None = None
        self._loose = asyncio.Event()
        self._failure: bytes | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # What the hub calls (`Member`).

    def offer(self, batch: Batch) -> bool:
        # One event always fits when nothing waits; a batch of several only within the
        # bound, as they would one by one.
        if not self.writer.room(len(batch.data), alone=len(batch.seqs) == 1):
            return False
        if self._first:
            self._first = False
            batch = batch.prefixed(_RETRY)
        self.next = batch.last + 1
        self.writer.batch(batch)
        return True

    def notice(self, message: bytes) -> None:
        self.writer.queue(message, len(message))

    def cut_loose(self, failure: bytes | None) -> None:
        self._failure = failure
        self._loose.set()

    # The response's side.

    def response(self, headers: dict[str, str]) -> WriterStream:
        """The SSE response that starts this viewer and writes its events."""
        return WriterStream(self.writer, self.start, self.stop, headers)

    def start(self) -> None:
        self._fanout.add(self)
        self._hub = self._fanout.hubs.enter(self._subject)
        self._task = asyncio.create_task(self._run(self._hub))

    async def stop(self) -> None:
        """End this viewer's reading (its own consumer deleted) and leave its hub (whose
        consumer is deleted if it was the last viewer)."""
        self._fanout.discard(self)
        self.writer.outbox.clear()
        if self._task is not None:
            await stop_task(self._task, lambda: self._closing)
        if self._hub is not None:
            self._hub.leave(self, self._key)
            hub, self._hub = self._hub, None
            await self._fanout.hubs.exit(hub)
        self.writer.outbox.clear()

    def _end(self, failure: bytes) -> None:
        if self._first:
            self._first = False
            failure = _RETRY + failure
        self.writer.queue(failure, len(failure))
        self.writer.queue(END, 0)

    async def _run(self, hub: Hub) -> None:
        try:
            await self._follow(hub)
        except MistralWorkflowsError as e:
            self._end(error_message(type(e).__name__, str(e)))
        except Exception:
            log.exception("mistral_workflows.gateway: reading events failed")
            self._end(
                error_message("internal_error", "reading events failed; see the gateway's log")
            )

    async def _follow(self, hub: Hub) -> None:
        await hub.opened()
        proven = caught_up = False
        while True:
            if hub.failure is not None:
                self._end(hub.failure)
                return
            if hub.joinable(self.next, proven, caught_up):
                self._loose.clear()
                if hub.join(self, self._key, self._keeps):
                    await self._loose.wait()
                    if self._failure is not None:
                        self._end(self._failure)
                        return
                hub.leave(self, self._key)
                self.notice(_BEHIND)
            proven, caught_up = await self._catch_up(hub)

    async def _catch_up(self, hub: Hub) -> tuple[bool, bool]:
        """Read on our own from `next` until the hub can take over; whether `next` was then
        read from the hub's stream, and whether nothing more was pending."""
        epoch, start = hub.epoch, self.next or None
        # Our position is from another stream than the hub's until one event shows both
        # read the same stream.
        foreign = False

        def on_gap(gap: Gap) -> None:
            nonlocal foreign
            if gap.recreated:
                foreign = True
                self.notice(gap_message(gap))
            else:
                self.notice(f": gap: {gap}\n\n".encode())

        reader = Reader(
            self._fanout.nc(),
            self._fanout.stream,
            [self._subject],
            start,
            on_gap=on_gap,
            max_bytes=self._fanout.bounds.client_bytes // 2,
        )
        try:
            await reader.open()
            first = reader.first_seq
            if start is not None and first is not None and first > start:
                on_gap(Gap(start, first))
                self.next = first
            # No stream yet (no consumer could be made): nothing is stored, all is to come.
            caught_up = reader.caught_up or (first is None and start is None)
            if not foreign and hub.joinable(self.next, True, caught_up):
                return True, caught_up
            while True:
                msg = await reader.next(None)
                assert msg is not None
                seq = msg.metadata.sequence.stream
                event = decode(msg)
                if event is not None and self._keeps(event):
                    batch = Batch.one(event_message(event), seq, event.data.event_timestamp)
                    if self._first:
                        self._first = False
                        batch = batch.prefixed(_RETRY)
                    await self.writer.put(batch)
                self.next = seq + 1
                if hub.epoch != epoch or hub.failure is not None:
                    return False, False
                if foreign:
                    foreign = event is None or not hub.holds(seq, event)
                if not foreign and hub.joinable(self.next, True, reader.caught_up):
                    return True, reader.caught_up
        finally:
            self._closing = True
            await reader.close()
            self._closing = False
