"""Shared reads: one JetStream consumer per subject filter, whatever the number of viewers.

A `Hub` reads the events of one subject filter from the live end of the stream on (from its
start if nothing matching is stored yet, so that viewers who come first join at once), decodes
each event once and frames it once as an SSE message. Viewers' own filters (event types,
metadata) are checked once per distinct set of filters; the events that come within a short
wait are joined in one `Batch` per set, and the same batch goes to every viewer of the set
in one write: the work per viewer is one hand-over per batch, not one per event. It keeps
the newest messages (bounded in bytes) so that a viewer that caught up on its own can join
at exactly its position. It never waits for a viewer: a viewer whose buffer has no room is
cut loose (see `_viewer`). The hub's consumer is deleted when its last viewer leaves.

Isolation: a viewer only ever joins the hub of its own subject filter, which already holds
its token's namespace and tree, so a hub's events are all events its viewers may read.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Hashable
from typing import Protocol

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from pydantic import ValidationError

from mistral_workflows.consumer import Gap
from mistral_workflows.consumer._consumers import last_sequence
from mistral_workflows.consumer._reader import Reader
from mistral_workflows.core.encoding import trace_context
from mistral_workflows.core.errors import MistralWorkflowsError
from mistral_workflows.core.events import StreamEvent
from mistral_workflows.gateway._batch import Batch
from mistral_workflows.gateway._outbox import ReadAhead
from mistral_workflows.gateway._sse import error_message, event_message, gap_message

__all__ = ["Hub", "Hubs", "Member", "decode", "stop_task"]

log = logging.getLogger("mistral_workflows.gateway")

# Seconds between cancellations of a reading task that has not begun to close.
_RECANCEL = 0.5
# Seconds an event waits before it is handed to its viewers: the events that come meanwhile
# go out in the same batch, one write per viewer. A write costs far more than one more event
# in it (about 13 us of Python and 10 us of system time per write on a loaded 2-core
# machine with httptools, whatever its size), so the wait grows with the number of viewers
# written to last time, 20 us each, from 2 ms to 40 ms (20 ms for 1,000 viewers).
_COALESCE = (0.002, 20e-6, 0.04)


class Member(Protocol):
    """What a hub needs of a viewer that joined it."""

    next: int
    """The first broker sequence the viewer has not been given yet (0: none given)."""

    def offer(self, batch: Batch) -> bool:
        """Queue `batch` to be sent (its events are all at or after `next`); False,
        queueing nothing, when the viewer's buffer has no room for it."""
        ...

    def notice(self, message: bytes) -> None:
        """Queue a message that must not be dropped (a gap notice)."""
        ...

    def cut_loose(self, failure: bytes | None) -> None:
        """The hub let go of the viewer: it is too slow, or (with `failure`) reading ended."""
        ...


class _Group:
    """The joined viewers with one set of filters: the event is checked once for all, and
    the events it keeps since the last hand-over wait here, to be joined in one batch."""

    __slots__ = ("frames", "keeps", "seqs", "stamps", "viewers")

    def __init__(self, keeps: Callable[[StreamEvent], bool]) -> None:
        self.keeps = keeps
        self.viewers: dict[Member, None] = {}
        self.frames: list[bytes] = []
        self.seqs: list[int] = []
        self.stamps: list[int] = []

    def add(self, seq: int, frame: bytes, stamp: int) -> None:
        self.frames.append(frame)
        self.seqs.append(seq)
        self.stamps.append(stamp)

    def take(self) -> Batch | None:
        """The events that wait, as one batch (None: none)."""
        if not self.frames:
            return None
        batch = Batch.of(self.frames, self.seqs, self.stamps)
        self.frames, self.seqs, self.stamps = [], [], []
        return batch


class Hub:
    """The shared read of one subject filter (see the module's docstring)."""

    def __init__(self, nc: NATS, stream: str, subject: str, bounds: ReadAhead) -> None:
        self.subject = subject
        self.members = 0
        """Viewers of this hub, joined or catching up on their own."""
        self.epoch = 0
        """How many times the stream turned out to be recreated (positions restarted)."""
        self.base = 0
        """Every message from this sequence on that the hub has read is in its history."""
        self.first_base = 0
        """`base` when reading began: while `base` is still it, the history was never cut."""
        self.next = 0
        """The sequence after the last one the hub read (the stream reaches it)."""
        self.failure: bytes | None = None
        self._nc, self._stream, self._max_bytes = nc, stream, bounds.client_bytes
        self._history: deque[tuple[int, bytes, StreamEvent]] = deque()
        self._history_size = 0
        self._bounds = bounds
        self._groups: dict[Hashable, _Group] = {}
        self._opened = asyncio.Event()
        self._waking: asyncio.TimerHandle | None = None
        self._last_woken = 0
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin reading, from the live end of the stream."""
        self._task = asyncio.create_task(self._read())

    async def opened(self) -> None:
        """Return once reading began (or failed: see `failure`)."""
        await self._opened.wait()

    def joinable(self, pos: int, proven: bool, caught_up: bool) -> bool:
        """Whether a viewer that has every matching event before `pos` can join now.

        `proven`: `pos` was read from this stream in this epoch by the viewer's own reader
        (else it must be one the hub reached); `caught_up`: that reader had nothing more
        pending, so nothing between `pos` and where the hub began was missed."""
        if self.failure is not None or not self._opened.is_set():
            return False
        if self.base <= pos and (proven or pos <= self.next):
            return True
        return caught_up and proven and self.base == self.first_base

    def holds(self, seq: int, event: StreamEvent) -> bool:
        """Whether the history holds `event` at `seq`: then whoever read it reads the same
        stream as the hub (event ids are unique)."""
        if not self._history or not self._history[0][0] <= seq < self.next:
            return False
        wanted = event.data.event_id
        return any(s == seq and e.data.event_id == wanted for s, _, e in self._history)

    def join(self, viewer: Member, key: Hashable, keeps: Callable[[StreamEvent], bool]) -> bool:
        """Give `viewer` what the history holds from its position on (in one batch if it
        has room for it), then live events. False if its buffer filled up: it has not
        joined, and reads on its own."""
        frames, seqs, stamps = [], [], []
        for seq, frame, event in self._history:
            if seq >= viewer.next and keeps(event):
                frames.append(frame)
                seqs.append(seq)
                stamps.append(event.data.event_timestamp)
        if frames and not viewer.offer(Batch.of(frames, seqs, stamps)):
            # No room for them all: as many as fit, one by one, so that it moves on.
            for one in zip(frames, seqs, stamps, strict=True):
                if not viewer.offer(Batch.one(*one)):
                    return False
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(keeps)
        group.viewers[viewer] = None
        return True

    def leave(self, viewer: Member, key: Hashable) -> None:
        """Stop giving events to `viewer` (it may not have joined)."""
        group = self._groups.get(key)
        if group is not None:
            group.viewers.pop(viewer, None)
            if not group.viewers:
                del self._groups[key]

    async def stop(self) -> None:
        """End the reading and wait until its consumer is deleted."""
        task = self._task
        if task is not None:
            await stop_task(task, lambda: self._closing)

    async def _read(self) -> None:
        reader: Reader | None = None
        try:
            # Nothing stored yet (the usual case for viewers that come before the run):
            # reading from the start is reading live, and the history is complete.
            reader = self._reader(None)
            await reader.open()
            self.next = reader.first_seq or 1
            if reader.first_seq is not None and not reader.caught_up:
                # Else from the live end, and from a position, not "new only": a reader
                # with a position knows when the stream is recreated, and says so.
                await reader.close()
                end = await last_sequence(self._nc, self._stream, self.subject)
                reader = self._reader(end + 1)
                await reader.open()
                self.next = self.base = self.first_base = reader.first_seq or end + 1
            self._opened.set()
            while True:
                msg = await reader.next(None)
                assert msg is not None
                self._deliver(msg)
        except MistralWorkflowsError as e:
            self._fail(error_message(type(e).__name__, str(e)))
        except Exception:
            log.exception("mistral_workflows.gateway: reading events failed")
            self._fail(
                error_message("internal_error", "reading events failed; see the gateway's log")
            )
        finally:
            self._closing = True
            self._opened.set()
            self._wake()
            self._forget()
            if reader is not None:
                await reader.close()

    def _reader(self, start: int | None) -> Reader:
        return Reader(
            self._nc,
            self._stream,
            [self.subject],
            start,
            on_gap=self._gap,
            max_bytes=self._max_bytes,
        )

    def _deliver(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        self.next = seq + 1
        event = decode(msg)
        if event is None:
            return
        frame = event_message(event)
        self._remember(seq, frame, event)
        stamp = event.data.event_timestamp
        kept = False
        for group in self._groups.values():
            if group.keeps(event):
                group.add(seq, frame, stamp)
                kept = True
        if kept and self._waking is None:
            least, each, most = _COALESCE
            delay = min(most, max(least, self._last_woken * each))
            self._waking = asyncio.get_running_loop().call_later(delay, self._wake)

    def _wake(self) -> None:
        """Hand the events that came since the last time to their viewers, one batch per
        set of filters, the same batch to every viewer at its position."""
        if self._waking is not None:
            self._waking.cancel()
            self._waking = None
        woken = 0
        for group in list(self._groups.values()):
            batch = group.take()
            if batch is None:
                continue
            first = batch.seqs[0]
            loose = []
            for viewer in group.viewers:
                given = batch if viewer.next <= first else batch.since(viewer.next)
                if given is None:
                    continue
                if viewer.offer(given):
                    woken += 1
                else:
                    loose.append(viewer)
            for viewer in loose:
                del group.viewers[viewer]
                viewer.cut_loose(None)
        self._last_woken = woken

    def _remember(self, seq: int, frame: bytes, event: StreamEvent) -> None:
        self._history.append((seq, frame, event))
        self._history_size += len(frame)
        self._bounds.take(len(frame))
        bounds = self._bounds
        # Within its own bound, and within the gateway's total when hubs hold too much.
        while len(self._history) > 1 and (
            self._history_size > bounds.client_bytes or bounds.used > bounds.total_bytes
        ):
            dropped, old, _ = self._history.popleft()
            self._history_size -= len(old)
            bounds.give(len(old))
            self.base = dropped + 1

    def _gap(self, gap: Gap) -> None:
        """The stream was recreated: positions restarted, the history means nothing."""
        log.info("mistral_workflows.gateway: %s", gap)
        self.epoch += 1
        self._forget()
        self.base = self.first_base = 0
        self.next = gap.first_available
        message = gap_message(gap)
        self._wake()
        for group in self._groups.values():
            for viewer in group.viewers:
                viewer.notice(message)
                viewer.next = 0

    def _forget(self) -> None:
        """Drop the history, giving its bytes back to the gateway's total."""
        self._history.clear()
        self._bounds.give(self._history_size)
        self._history_size = 0

    def _fail(self, message: bytes) -> None:
        self._wake()
        self.failure = message
        groups, self._groups = self._groups, {}
        for group in groups.values():
            for viewer in group.viewers:
                viewer.cut_loose(message)


class Hubs:
    """The hubs of one gateway, by subject filter; a hub lives while it has viewers."""

    def __init__(self, nc: Callable[[], NATS], stream: str, bounds: ReadAhead) -> None:
        self._nc = nc
        self._stream = stream
        self._bounds = bounds
        self._hubs: dict[str, Hub] = {}

    def enter(self, subject: str) -> Hub:
        """The hub of `subject`, started if it is new; counts one more member."""
        hub = self._hubs.get(subject)
        if hub is None or hub.failure is not None:
            hub = Hub(self._nc(), self._stream, subject, self._bounds)
            self._hubs[subject] = hub
            hub.start()
        hub.members += 1
        return hub

    async def exit(self, hub: Hub) -> None:
        """One member less; the last one out deletes the hub's consumer."""
        hub.members -= 1
        if hub.members == 0:
            if self._hubs.get(hub.subject) is hub:
                del self._hubs[hub.subject]
            await hub.stop()

    def __len__(self) -> int:
        return len(self._hubs)


def decode(msg: Msg) -> StreamEvent | None:
    """The event in `msg`, with its broker sequence; None (logged) if it is not one."""
    seq = msg.metadata.sequence.stream
    try:
        event = StreamEvent.model_validate(orjson.loads(msg.data))
    except (orjson.JSONDecodeError, ValidationError) as e:
        log.warning("mistral_workflows: skipping message #%d on %s: %s", seq, msg.subject, e)
        return None
    event.broker_sequence = seq
    event.trace_context = trace_context(msg.headers)
    return event


_background: set[asyncio.Task[None]] = set()


async def stop_task(task: asyncio.Task[None], closing: Callable[[], bool]) -> None:
    """Cancel a reading task and wait until it ended (its consumer deleted)."""
    # Kept alive should the caller itself be cancelled while waiting here.
    _background.add(task)
    task.add_done_callback(_background.discard)
    while not task.done():
        # Python 3.11's `wait_for` (nats-py's `next_msg`) loses a cancellation that comes
        # as its message arrives: cancel again until the reading closes its reader.
        if not closing():
            task.cancel()
        await asyncio.wait({task}, timeout=_RECANCEL)
