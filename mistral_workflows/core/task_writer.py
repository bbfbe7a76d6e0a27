"""The mechanics behind `Task`: one `TaskWriter` per task turns state changes into events.

An update flows one way: the writer diffs the changed values against its *shadow* (a
pure-JSON copy of the state as published), stages the ops (applies them to the shadow
within the size limit, folds them with the ops not sent yet), and sends them through the
scope's sink as one event. It numbers the events, builds their envelopes, and sends a
snapshot of the state now and then for consumers that join late.

An update made after the event loop turned is sent at once, unless the task's previous
event waits for room in the acknowledgement window, or the loop turns late on average (a
saturated worker): then it folds into the next event, at most twice `max_delay` later.
Updates made without the loop turning (blocking work between them) fold too; their event
leaves on the next turn, or from the update call itself once the oldest folded update would
otherwise be older than `max_delay`, written to the socket at once.

A task ends with exactly one terminal event, sent after every update accepted before it:
COMPLETED, or FAILED naming the problem when the end itself fails (the state was changed in
place to something that cannot be sent, an earlier update could not be sent).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from mistral_workflows.core.context import Scope
from mistral_workflows.core.diff import StrLists, diff, diff_keys
from mistral_workflows.core.encoding import event_size
from mistral_workflows.core.envelope import envelope, failure_message, source
from mistral_workflows.core.errors import (
    InvalidStateError,
    MistralWorkflowsError,
    PayloadTooLargeError,
)
from mistral_workflows.core.events import CUSTOM_TASK_EVENT_TYPES, EventType
from mistral_workflows.core.json_value import JSON
from mistral_workflows.core.patch import Op, apply_own, merge
from mistral_workflows.core.task_snapshots import Snapshots

__all__ = ["TaskWriter"]

log = logging.getLogger("mistral_workflows")

# The most patch bytes folded into one event: large enough that the envelope is noise.
_FOLD_MAX_BYTES = 32 * 1024
# Room left in the size estimate of an event for what varies between events (sequence
# number, timestamp digits).
_SIZE_SLACK = 64
# Loop turns later than max_delay / _SLOW_TURN_SHARE on average (over about _LAG_TURNS
# turns) mean the worker is saturated.
_SLOW_TURN_SHARE = 2
_LAG_TURNS = 16
_IN_PROGRESS = EventType.CUSTOM_TASK_IN_PROGRESS
_TERMINAL = CUSTOM_TASK_EVENT_TYPES - {EventType.CUSTOM_TASK_STARTED, _IN_PROGRESS}


class TaskWriter:
    """Sends the events of one `Task`, in order, within the size limit.

    Args:
        scope: The activity attempt (or workflow run) the task runs in.
        stream: The task type, which is its stream.
        task_id: The task id.
        key: What the task's event ids (JetStream's message ids) are built from: unique
            to the task in its activity, and safe in a header whatever the id holds.
        shadow: The initial state, as JSON.
    """

    def __init__(self, scope: Scope, stream: str, task_id: str, key: str, shadow: JSON) -> None:
        self._sink = scope.emitter
        channel = self._sink.channel(stream, task_id)
        self._channel = channel
        self._stream = stream
        self._task_id = task_id
        attempt = scope.activity.attempt if scope.activity else 1
        self._event_id_prefix = f"{key}:{attempt}:"
        # Where the events come from never changes: build those parts of the envelope once.
        self._source = source(scope.context, scope.activity)
        self._shadow = shadow
        self._state_bytes = self._encoded_state_size(shadow)
        self._seq = 0
        self._snapshots = Snapshots(self._sink, channel)
        self._str_lists = StrLists()
        # Ops applied to the shadow but not sent yet (see the module docstring).
        self._folded: list[Op] = []
        self._folded_bytes = 0
        self._patch_overhead = 0
        self._limit = channel.limit  # the event size limit, headers included
        self._coalesce = channel.coalesce and channel.max_delay_ns > 0
        self._max_delay = channel.max_delay_ns
        self._busy = channel.busy
        self._unacknowledged = channel.unacknowledged
        self._hand_over = channel.hand_over
        self._folded_at = 0  # when the oldest folded update was made (monotonic ns)
        self._last_call = 0  # when the last update was made, or the task started
        self._unwritten_at = 0  # when an event first waited for a turn that did not come
        self._in_turn = False  # something happened since the event loop last turned
        self._turn_asked = 0  # when the task last asked to hear of the next turn
        self._lag = 0  # how long the loop takes to turn, on average (ns)
        self._slow = False  # the loop takes long to turn: the worker is saturated
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._background: asyncio.Task[None] | None = None
        self._background_error: BaseException | None = None
        self._ended = False  # a terminal event was sent (or is being sent)

    async def start(self) -> None:
        """Send CUSTOM_TASK_STARTED with the initial state."""
        payload = None if self._shadow is None else {"type": "json", "value": self._shadow}
        self._last_call = time.monotonic_ns()
        await self._publish(EventType.CUSTOM_TASK_STARTED, {"payload": payload} if payload else {})

    async def update(self, changes: Mapping[str, Any]) -> None:
        """Stage the new values of the given top-level keys (see `_stage`)."""
        ops = diff_keys(self._shadow, changes, self._str_lists)
        if ops:
            await self._stage(ops)

    async def replace(self, state: JSON) -> None:
        """Stage the difference between the shadow and `state` (see `_stage`)."""
        ops = diff(self._shadow, state)
        if ops:
            await self._stage(ops)

    async def close(self) -> None:
        """Stop sending in the background: what is folded goes with the last event."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._background is not None:
            await self._background

    def raise_background_error(self) -> None:
        """Raise the error of the last background send, if it failed."""
        error, self._background_error = self._background_error, None
        if error is not None:
            raise error

    async def complete(self, final: Callable[[], JSON]) -> None:
        """Send what was accepted, then CUSTOM_TASK_COMPLETED with the state `final()`
        gives (changes made to the state in place are staged first).

        Whatever fails on the way, the task still ends with one event: CUSTOM_TASK_FAILED
        naming the problem, after every update accepted before.

        Raises:
            InvalidStateError: the state was changed in place to something not JSON.
            PayloadTooLargeError: the changes in place do not fit in an event.
            MistralWorkflowsError: an earlier update could not be sent.
        """
        try:
            self.raise_background_error()
            await self._stage_in_place(final)
            await self._send_folded()
            attributes = {"payload": {"type": "json", "value": self._shadow}}
            await self._publish(EventType.CUSTOM_TASK_COMPLETED, attributes)
        except Exception as e:
            await self.end(
                EventType.CUSTOM_TASK_FAILED, {"failure": {"message": failure_message(e)}}
            )
            raise

    async def end(self, event_type: EventType, attributes: dict[str, Any]) -> None:
        """Send the event that ends a task left by an exception (best effort), unless the
        task has ended already."""
        if self._ended:
            return
        try:
            await self._send_folded()
            await self._publish(event_type, attributes)
        except MistralWorkflowsError as e:
            # The task's own exception matters more; the activity's flush reports the rest.
            message = "mistral_workflows: could not publish %s: %s"
            log.warning(message, event_type, e, extra={"task_id": self._task_id})

    async def _stage_in_place(self, final: Callable[[], JSON]) -> None:
        """Stage the changes made to the state in place, without an update."""
        ops: list[Op] = []
        try:
            ops = diff(self._shadow, final())
            if ops:
                await self._stage(ops)
        except (InvalidStateError, PayloadTooLargeError) as e:
            where = f" at {_some_paths(ops)}" if ops else ""
            raise type(e)(
                f"{e} (found when the task ended: the state was changed in place{where} to "
                "something that cannot be sent; the updates accepted before were sent and "
                "the task ended as failed)"
            ) from e

    async def _stage(self, ops: list[Op]) -> None:
        """Apply `ops` to the shadow and send them, or fold them into the next event (see
        the module docstring for when).

        Raises:
            PayloadTooLargeError: the update alone, or the state, would be over the limit;
                nothing was applied.
        """
        self.raise_background_error()
        size = self._channel.encoded_size(len(orjson.dumps(ops)), len(ops))
        room = self._limit - self._overhead()
        if size > room:
            raise PayloadTooLargeError(
                f"an update of task {self._stream!r} would make a "
                f"{size + self._overhead() - _SIZE_SLACK}-byte event, over the "
                f"{self._limit}-byte event limit; nothing was sent. Store large "
                "data elsewhere (object storage, a database) and stream a reference to it, "
                "e.g. {'url': ..., 'size': ...}."
            )
        if self._folded and self._folded_bytes + size > min(room, _FOLD_MAX_BYTES):
            # Full: sent now, after the task's event waiting for room if there is one (the
            # producer waits with it, at most the persist timeout).
            await self._send_folded()
        self._apply_within_limit(ops, size)
        now = time.monotonic_ns()
        if self._folded:
            self._channel.watch.folded()
            merge(self._folded, ops)
        else:
            self._folded, self._folded_at = ops, now
        self._folded_bytes += size
        if not self._coalesce:
            await self._send_folded()
            return
        yielded, interval = not self._in_turn, now - self._last_call
        self._last_call = now
        self._mark_turn(now)
        if self._busy():  # the previous event waits for room: this one goes after it
            self._send_soon()
            return
        # The next update is expected as far off as this one was from the last.
        due = now + interval
        if yielded:
            if self._slow and (
                due - self._folded_at < self._max_delay
                or (self._unacknowledged() and now - self._folded_at < 2 * self._max_delay)
            ):
                # Saturated: fewer, larger events, while the last one waits for the loop
                # to read its acknowledgement.
                self._send_by_deadline(now)
                return
            await self._send_folded()
            return
        # No turn since the last update: the producer may not yield before its next one.
        if due - self._folded_at >= self._max_delay:
            await self._send_folded()
        if self._unwritten_at and due - self._unwritten_at >= self._max_delay:
            self._unwritten_at = 0
            self._hand_over()

    async def _send_folded(self) -> None:
        """Send the ops applied to the shadow since the last event, as one event."""
        if not self._folded:
            return
        ops, self._folded, self._folded_bytes = self._folded, [], 0
        attributes = {"payload": {"type": "json_patch", "value": ops}}
        await self._publish(_IN_PROGRESS, attributes, self._folded_at)

    def _overhead(self) -> int:
        """An upper bound of an IN_PROGRESS event's size without its ops."""
        if not self._patch_overhead:
            empty = {"payload": {"type": "json_patch", "value": []}}
            body = self._body(_IN_PROGRESS, empty, 10**12)
            event_id = body["data"]["event_id"]
            payload, headers = self._sink.encode(body, event_id, "an empty update")
            self._patch_overhead = event_size(payload, headers) + _SIZE_SLACK
        return self._patch_overhead

    def _mark_turn(self, now: int) -> None:
        """Note that the task did something in this loop turn (see `_next_turn`)."""
        if not self._in_turn:
            self._in_turn, self._turn_asked = True, now
            asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        """The event loop turned since this task last updated or sent: its events are being
        written to the socket; send what was folded since, unless the turn came late (the
        worker is saturated): then the folded changes wait for `max_delay`."""
        self._in_turn = False
        self._unwritten_at = 0
        now = time.monotonic_ns()
        # An average over the last several turns: one late turn (the process descheduled
        # for a moment) does not make a saturated worker.
        self._lag += (now - self._turn_asked - self._lag) // _LAG_TURNS
        self._slow = self._lag * _SLOW_TURN_SHARE >= self._max_delay
        if self._folded:
            if self._slow:
                self._send_by_deadline(now)
            else:
                self._send_soon()

    def _send_soon(self) -> None:
        """Send what is folded from a task of its own (after the event waiting for room)."""
        if self._background is None and not self._closed:
            self._background = asyncio.ensure_future(self._send_in_background())

    def _send_by_deadline(self, now: int) -> None:
        """Send what is folded once its oldest update is twice `max_delay` old (in a
        saturated worker, whose loop is late anyway)."""
        if self._timer is None:
            delay = (self._folded_at + 2 * self._max_delay - now) / 1e9
            self._timer = asyncio.get_running_loop().call_later(delay, self._deadline)

    def _deadline(self) -> None:
        self._timer = None
        if not self._folded:
            return
        now = time.monotonic_ns()
        if (now - self._folded_at) * 10 >= self._max_delay * 18:
            self._send_soon()
        else:  # the timer was set for changes sent since
            self._send_by_deadline(now)

    async def _send_in_background(self) -> None:
        try:
            await self._send_folded()
        except Exception as e:  # raised to the producer by its next call
            self._background_error = e
        finally:
            self._background = None

    def _body(self, event_type: str, attributes: dict[str, Any], seq: int) -> dict[str, Any]:
        return envelope(
            stream=self._stream,
            event_type=event_type,
            event_id=f"{self._event_id_prefix}{seq}",
            attributes={
                "custom_task_id": self._task_id,
                "custom_task_type": self._stream,
                "task_sequence": seq,
                **attributes,
            },
            now_ns=self._channel.clock(),
            **self._source,
        )

    async def _publish(self, event_type: str, attributes: dict[str, Any], made_at: int = 0) -> None:
        """Encode, check and send one event, numbered in the order of the calls; `made_at`
        is when its oldest update was made (default: now)."""
        body = self._body(event_type, attributes, self._seq)
        event_id = body["data"]["event_id"]
        what = f"{event_type} of task {self._stream!r}"
        payload, headers = self._sink.encode(body, event_id, what)
        then = self._snapshots.after(body, len(payload), self._shadow)
        self._seq += 1
        self._ended = self._ended or event_type in _TERMINAL
        self._channel.watch.event(event_type)
        if self._coalesce:
            # Written to the socket when the loop turns (or by `_hand_over`).
            now = time.monotonic_ns()
            if not self._unwritten_at:
                self._unwritten_at = made_at or now
            self._mark_turn(now)
        await self._sink.send(self._channel.subject, payload, headers, then)

    def _apply_within_limit(self, ops: list[Op], patch_bytes: int) -> None:
        """Apply `ops` to the shadow unless the state would outgrow one event.

        The size is tracked as an upper bound (last exact size plus every patch since);
        the exact size is measured only when the bound reaches the limit.
        """
        # The COMPLETED event carries the whole state in an envelope like an update's.
        limit = self._limit - self._overhead()
        bound = self._state_bytes + patch_bytes
        if bound < limit:
            self._str_lists.forget(ops)
            self._shadow = apply_own(self._shadow, ops)
            self._state_bytes = bound
            return
        candidate = apply_own(copy.deepcopy(self._shadow), ops)
        exact = self._encoded_state_size(candidate)
        if exact >= limit:
            envelope = self._overhead()
            raise PayloadTooLargeError(
                f"task {self._stream!r} would outgrow one event: its COMPLETED event, "
                f"which carries the whole state, would take up to {exact + envelope} bytes "
                f"({exact} of state and up to {envelope} of envelope and headers), which "
                f"does not fit the {self._limit}-byte event limit; the update was not applied. "
                "Store large data elsewhere and stream a reference to it, "
                "e.g. {'url': ..., 'size': ...}."
            )
        self._str_lists.forget(ops)
        self._shadow, self._state_bytes = candidate, exact

    def _encoded_state_size(self, state: JSON) -> int:
        values = len(state) if isinstance(state, dict) else 1  # encrypted fields, at most
        return self._channel.encoded_size(len(orjson.dumps(state)), max(1, values))


def _some_paths(ops: list[Op], most: int = 5) -> str:
    """The paths `ops` change, the first few of them, for an error message."""
    paths = list(dict.fromkeys(repr(op["path"]) for op in ops))
    more = f" and {len(paths) - most} more" if len(paths) > most else ""
    return ", ".join(paths[:most]) + more
