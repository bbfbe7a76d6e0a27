"""`Task`: a piece of work whose state streams to consumers as it changes.

    async with Task(type="token-stream", state={"tokens": []}) as task:
        await task.update_state({"tokens": task.state["tokens"] + [token]})

Entering publishes CUSTOM_TASK_STARTED with the initial state; each update that changes
something publishes CUSTOM_TASK_IN_PROGRESS with a JSON patch; leaving publishes
CUSTOM_TASK_COMPLETED with the final state, or CUSTOM_TASK_FAILED / _CANCELED /
_TIMED_OUT when an exception leaves the block (the exception always propagates).

Updates made while an event of the task is waiting for the event loop's next turn (a
producer updating faster than it yields) are folded into one IN_PROGRESS event: nothing
could reach the socket before that turn anyway, so no latency is added, and a fast stream
costs one envelope per turn instead of one per update.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from temporalio import activity

from mistral_workflows.core import events
from mistral_workflows.core.context import FollowUp, Scope, current_scope
from mistral_workflows.core.diff import StrLists, diff
from mistral_workflows.core.encoding import event_size
from mistral_workflows.core.errors import (
    ConfigurationError,
    InvalidStateError,
    MistralWorkflowsError,
    PayloadTooLargeError,
)
from mistral_workflows.core.json_value import JSON, to_json
from mistral_workflows.core.patch import Op, apply_own, merge
from mistral_workflows.core.pointer import escape
from mistral_workflows.core.redact import redact
from mistral_workflows.core.subjects import validate_stream_type

__all__ = ["Task"]

log = logging.getLogger("mistral_workflows")

_SNAPSHOT_MIN_BYTES = 16 * 1024
_SNAPSHOT_MAX_AGE_NS = 1_000_000_000
# The most patch bytes folded into one event: large enough that the envelope is noise.
_FOLD_MAX_BYTES = 32 * 1024
# Room left in the size estimate of an event for what varies between events (sequence
# number, timestamp digits).
_SIZE_SLACK = 64

S = TypeVar("S")


class Task(Generic[S]):
    """A unit of work whose state is streamed to consumers while it runs.

    Args:
        type: The stream name consumers subscribe to, e.g. "token-stream":
            1 to 64 characters from `[A-Za-z0-9_-]`, not starting with `_`.
        state: The initial state: a dict of JSON values, a pydantic model (updates are
            merged and validated), or None for a task that only starts and finishes.
        id: The task id; by default a deterministic id derived from the workflow run,
            the activity, the type and the task's rank among tasks of that type, so that
            every attempt of an activity gives its task the same id.

    Raises:
        ConfigurationError: `type` is not a valid stream name.
        InvalidStateError: `state` cannot be sent as JSON.
        NotInPluggedActivityError: not inside an activity of a plugged worker.
    """

    def __init__(self, type: str, state: S | None = None, *, id: str | None = None) -> None:
        self.type: str = validate_stream_type(type)
        self._scope: Scope = current_scope()
        self._state: Any = _initial_live_state(state)
        self._shadow: JSON = _as_json(self._state)
        self.id: str = self._derive_id() if id is None else _custom_id(id)
        # Event ids (JetStream's message ids, for deduplication) are built from this key:
        # unique to the task in its activity, and safe in a header whatever the id holds.
        self._key = self.id if id is None else self._scoped(self.id)
        self._seq = 0
        self._state_bytes = self._encoded_state_size(self._shadow)
        self._subject = self._scope.emitter.subject(self.type)
        # Where the events come from never changes: build those parts of the envelope once.
        self._origin = self._scope.context.origin()
        self._workflow_context = self._scope.context.workflow_context()
        activity_ref = self._scope.activity
        self._activity_context = activity_ref.to_dict() if activity_ref else None
        self._entered = False
        self._finished = False
        self._unsnapshotted = 0
        self._snapshot_bytes = 0
        self._snapshot_ns = 0
        self._str_lists = StrLists()
        # Ops applied to the shadow but not sent yet (see the module docstring).
        self._folded: list[Op] = []
        self._folded_bytes = 0
        self._patch_overhead = 0
        self._limit = self._scope.emitter.limit  # the event size limit, headers included
        self._coalesce = self._scope.emitter.coalesce
        self._sent_this_turn = False
        self._watching_turn = False
        self._background: asyncio.Task[None] | None = None
        self._background_error: BaseException | None = None

    @property
    def state(self) -> S:
        """The current state (the same object across updates for dict state)."""
        return self._state  # type: ignore[no-any-return]

    async def __aenter__(self) -> Task[S]:
        if self._entered:
            raise RuntimeError("a Task can be entered only once; create a new Task instead")
        self._entered = True
        payload = None if self._shadow is None else {"type": "json", "value": self._shadow}
        await self._publish("CUSTOM_TASK_STARTED", {"payload": payload} if payload else {})
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finished = True
        if self._background is not None:
            await self._background
        if exc is None and self._scope.timed_out is None:
            self._raise_background_error()
            await self._sync_in_place_changes()
            await self._send_folded()
            await self._publish("CUSTOM_TASK_COMPLETED", self._value_attributes())
            return
        # Also a block left normally after the library ended the attempt at its deadline.
        event_type, attributes = _terminal_event(exc, self._scope)
        try:
            await self._send_folded()
            await self._publish(event_type, attributes)
        except MistralWorkflowsError as e:
            # The task's own exception matters more; the activity's flush reports the rest.
            log.warning("mistral_workflows: could not publish %s: %s", event_type, e)

    async def update_state(self, updates: Mapping[str, Any] | BaseModel) -> None:
        """Merge `updates` into the state and publish the change as a JSON patch.

        Only the given top-level keys are compared, so the cost follows the size of the
        change, not of the state. An update that changes nothing publishes nothing.

        Raises:
            InvalidStateError: the update is not JSON (or does not validate against the
                state's pydantic model); the state is unchanged.
            PayloadTooLargeError: the event or the state would exceed the size limit; the
                state is unchanged.
        """
        self._check_open()
        if self._state is None:
            raise InvalidStateError(
                f"task {self.type!r} was created without state; pass state={{...}} to "
                "Task(...) to stream updates"
            )
        if isinstance(self._state, BaseModel):
            merged, changes = _merge_model(self._state, updates)
            await self._publish_changes(changes)
            self._state = merged
        else:
            plain = _as_mapping(updates)
            await self._publish_changes(plain)
            self._state.update(plain)

    async def set_state(self, new_state: S) -> None:
        """Replace the whole state and publish the difference as a JSON patch.

        Raises:
            InvalidStateError: `new_state` is not JSON (or not the state's model type).
            PayloadTooLargeError: the event or the state would exceed the size limit.
        """
        self._check_open()
        live = _initial_live_state(new_state)
        if isinstance(self._state, BaseModel) and not isinstance(live, type(self._state)):
            live = _validate_model(type(self._state), live)
        ops = diff(self._shadow, _as_json(live))
        if ops:
            await self._stage(ops)
        self._state = live

    async def _publish_changes(self, changes: Mapping[str, Any]) -> None:
        ops = _diff_keys(self._shadow, changes, self._str_lists)
        if ops:
            await self._stage(ops)

    def _check_open(self) -> None:
        if not self._entered or self._finished:
            raise RuntimeError(
                "update the state inside `async with Task(...) as task:`, not before or after"
            )

    async def _sync_in_place_changes(self) -> None:
        """Publish changes made by mutating `task.state` directly, without an update."""
        ops = diff(self._shadow, _as_json(self._state))
        if ops:
            await self._stage(ops)

    async def _stage(self, ops: list[Op]) -> None:
        """Apply `ops` to the shadow and send them, or fold them into the next event when
        an event of this task already went out in this loop turn.

        Raises:
            PayloadTooLargeError: the update alone, or the state, would be over the limit;
                nothing was applied.
        """
        self._raise_background_error()
        size = self._scope.emitter.encoded_size(len(orjson.dumps(ops)), len(ops))
        room = self._limit - self._overhead()
        if size > room:
            raise PayloadTooLargeError(
                f"an update of task {self.type!r} would make a "
                f"{size + self._overhead() - _SIZE_SLACK}-byte event, over the "
                f"{self._limit}-byte event limit; nothing was sent. Store large "
                "data elsewhere (object storage, a database) and stream a reference to it, "
                "e.g. {'url': ..., 'size': ...}."
            )
        if self._folded and self._folded_bytes + size > min(room, _FOLD_MAX_BYTES):
            await self._send_folded()
        self._apply_within_limit(ops, size)
        if self._folded:
            merge(self._folded, ops)
        else:
            self._folded = ops
        self._folded_bytes += size
        if not (self._coalesce and self._sent_this_turn):
            await self._send_folded()

    async def _send_folded(self) -> None:
        """Send the ops applied to the shadow since the last event, as one event."""
        if not self._folded:
            return
        ops, self._folded, self._folded_bytes = self._folded, [], 0
        attributes = {"payload": {"type": "json_patch", "value": ops}}
        await self._publish("CUSTOM_TASK_IN_PROGRESS", attributes)

    def _overhead(self) -> int:
        """An upper bound of an IN_PROGRESS event's size without its ops."""
        if not self._patch_overhead:
            empty = {"payload": {"type": "json_patch", "value": []}}
            body = self._body("CUSTOM_TASK_IN_PROGRESS", empty, 10**12)
            event_id = body["data"]["event_id"]
            payload, headers = self._scope.emitter.encode(body, event_id, "an empty update")
            self._patch_overhead = event_size(payload, headers) + _SIZE_SLACK
        return self._patch_overhead

    def _next_turn(self) -> None:
        """The event loop turned since this task last sent: send what was folded since."""
        self._watching_turn = self._sent_this_turn = False
        if self._folded and self._background is None and not self._finished:
            self._background = asyncio.ensure_future(self._send_in_background())

    async def _send_in_background(self) -> None:
        try:
            await self._send_folded()
        except Exception as e:  # raised to the producer by its next call
            self._background_error = e
        finally:
            self._background = None

    def _raise_background_error(self) -> None:
        error, self._background_error = self._background_error, None
        if error is not None:
            raise error

    def _value_attributes(self) -> dict[str, Any]:
        return {"payload": {"type": "json", "value": self._shadow}}

    def _body(self, event_type: str, attributes: dict[str, Any], seq: int) -> dict[str, Any]:
        scope = self._scope
        attempt = scope.activity.attempt if scope.activity else 1
        return events.envelope(
            stream=self.type,
            event_type=event_type,
            event_id=f"{self._key}:{attempt}:{seq}",
            attributes={
                "custom_task_id": self.id,
                "custom_task_type": self.type,
                "task_sequence": seq,
                **attributes,
            },
            origin=self._origin,
            workflow_context=self._workflow_context,
            activity_context=self._activity_context,
            now_ns=scope.emitter.now_ns(),
        )

    async def _publish(self, event_type: str, attributes: dict[str, Any]) -> None:
        """Encode, check and send one event, numbered in the order of the calls."""
        emitter = self._scope.emitter
        body = self._body(event_type, attributes, self._seq)
        event_id = body["data"]["event_id"]
        payload, headers = emitter.encode(body, event_id, f"{event_type} of task {self.type!r}")
        then = self._snapshot(body) if self._wants_snapshot(event_type, len(payload)) else None
        self._seq += 1
        if self._coalesce:
            self._sent_this_turn = True
            if not self._watching_turn:
                self._watching_turn = True
                asyncio.get_running_loop().call_soon(self._next_turn)
        await emitter.send(self._subject, payload, headers, then)

    def _wants_snapshot(self, event_type: str, size: int) -> bool:
        """Snapshot at the start, at the end, and when the patches since the last snapshot
        outweigh the state (or a second has passed): the snapshots then cost no more than
        the patches themselves, whatever the state's size."""
        now = self._scope.emitter.now_ns()
        if event_type == "CUSTOM_TASK_IN_PROGRESS":
            self._unsnapshotted += size
            due = self._unsnapshotted >= max(self._snapshot_bytes, _SNAPSHOT_MIN_BYTES)
            if not due and now - self._snapshot_ns < _SNAPSHOT_MAX_AGE_NS:
                return False
        self._unsnapshotted, self._snapshot_ns = 0, now
        return True

    def _snapshot(self, body: dict[str, Any]) -> FollowUp:
        """A copy of the task's state as of this event, for consumers that join late.

        It is sent once the event is stored, naming the sequence to resume reading from.
        """
        emitter = self._scope.emitter
        data = body["data"]
        attributes = dict(data["attributes"])
        if "payload" in attributes or data["event_type"] == "CUSTOM_TASK_IN_PROGRESS":
            state = memoryview(orjson.dumps(self._shadow)).tobytes()  # exact size
            self._snapshot_bytes = len(state)
            attributes["payload"] = {"type": "json", "value": orjson.Fragment(state)}
        msg_id = f"{data['event_id']}:snapshot"
        snapshot = {**body, "data": {**data, "event_id": msg_id, "attributes": attributes}}
        subject = emitter.snapshot_subject(self.type, self.id)

        def build(seq: int) -> tuple[str, bytes, dict[str, str]] | None:
            snapshot["metadata"] = {"snapshot": True, "resume_seq": seq + 1}
            encoded = emitter.encode_snapshot(snapshot, msg_id)
            return None if encoded is None else (subject, *encoded)

        return build

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
            raise PayloadTooLargeError(
                f"task {self.type!r} state would grow to {exact} bytes: its COMPLETED event, "
                "which carries the whole state, would be over the "
                f"{self._limit}-byte event limit; the update was not applied. "
                "Store large data elsewhere and stream a reference to it, "
                "e.g. {'url': ..., 'size': ...}."
            )
        self._str_lists.forget(ops)
        self._shadow, self._state_bytes = candidate, exact

    def _encoded_state_size(self, state: JSON) -> int:
        values = len(state) if isinstance(state, dict) else 1  # encrypted fields, at most
        return self._scope.emitter.encoded_size(len(orjson.dumps(state)), max(1, values))

    def _scoped(self, custom_id: str) -> str:
        ctx, act = self._scope.context, self._scope.activity
        where = [ctx.namespace, ctx.workflow_exec_id, ctx.workflow_run_id]
        return events.stable_id(*where, act.activity_id if act else "", "custom id", custom_id)

    def _derive_id(self) -> str:
        ctx, act = self._scope.context, self._scope.activity
        ordinal = self._scope.next_task_ordinal(self.type)
        where = [ctx.namespace, ctx.workflow_exec_id, ctx.workflow_run_id]
        return events.stable_id(*where, act.activity_id if act else "", self.type, str(ordinal))


def _custom_id(task_id: object) -> str:
    if not isinstance(task_id, str) or not task_id:
        raise ConfigurationError(
            f"Task id must be a non-empty str, not {task_id!r}; leave it out to get a "
            "deterministic id derived from the workflow run and the activity"
        )
    return task_id


def _initial_live_state(state: object) -> Any:
    if state is None or isinstance(state, BaseModel):
        return state
    if isinstance(state, Mapping):
        return dict(state)
    raise InvalidStateError(
        f"Task state must be a dict, a pydantic model or None, not {type(state).__name__}; "
        "wrap other values, e.g. state={'items': [...]}"
    )


def _as_json(state: Any) -> JSON:
    if isinstance(state, BaseModel):
        return to_json(state.model_dump(mode="json"))
    return to_json(state)


def _as_mapping(updates: object) -> Mapping[str, Any]:
    if isinstance(updates, BaseModel):
        return {k: getattr(updates, k) for k in updates.model_fields_set}
    if not isinstance(updates, Mapping):
        raise InvalidStateError(
            f"update_state takes a dict of top-level keys to new values, not "
            f"{type(updates).__name__}; use set_state to replace the whole state"
        )
    return updates


def _diff_keys(shadow: JSON, changes: Mapping[str, Any], str_lists: StrLists) -> list[Op]:
    """The ops for the changed top-level keys; strings and exact ints, bools and None (the
    usual updates: text, counters, flags) are compared here, the rest by `diff`."""
    assert isinstance(shadow, dict)
    ops: list[Op] = []
    for key, value in changes.items():
        old: Any = shadow.get(key, _MISSING) if type(key) is str else _MISSING
        if old is value:
            continue
        if not isinstance(key, str):
            raise InvalidStateError(
                f"task state at '' (the root) has the non-str key {key!r} "
                f"({type(key).__name__}): JSON object keys must be strings: convert the key "
                "with str()"
            )
        path = _path(key)
        kind = type(value)
        if kind is not type(old) or kind not in _PLAIN:
            if old is _MISSING:
                ops.append({"op": "add", "path": path, "value": to_json(value, path=path)})
            else:
                ops += diff(old, value, path, str_lists=str_lists)
        elif old == value:
            continue
        elif kind is str and len(value) > len(old) and value.startswith(old):
            ops.append({"op": "append", "path": path, "value": value[len(old) :]})
        else:
            ops.append({"op": "replace", "path": path, "value": value})
    return ops


# Exact types whose equality is JSON equality (not float: 0.0 == -0.0).
_PLAIN = frozenset({str, int, bool, type(None)})
_MISSING = object()


@functools.lru_cache(maxsize=1024)
def _path(key: str) -> str:
    return "/" + escape(key)


def _merge_model(model: BaseModel, updates: object) -> tuple[BaseModel, dict[str, Any]]:
    """Validate only the updated fields on a copy; return it and their JSON values."""
    changes = _as_mapping(updates)
    merged = model.model_copy()
    validator = type(model).__pydantic_validator__
    try:
        for key, value in changes.items():
            validator.validate_assignment(merged, key, value)
    except ValidationError as e:
        raise InvalidStateError(
            f"update does not match {type(model).__name__}: {e}; the state is unchanged"
        ) from e
    dumped = merged.model_dump(mode="json", include=set(changes))
    return merged, dumped


def _validate_model(cls: type[BaseModel], value: object) -> BaseModel:
    try:
        return cls.model_validate(value)
    except ValidationError as e:
        raise InvalidStateError(f"new state does not match {cls.__name__}: {e}") from e


def _terminal_event(exc: BaseException | None, scope: Scope) -> tuple[str, dict[str, Any]]:
    """The event that ends a task left by `exc` (None: left normally after the attempt's
    deadline), following the attempt's timeout, then Temporal's cancellation cause."""
    if exc is not None and not isinstance(exc, asyncio.CancelledError):
        return "CUSTOM_TASK_FAILED", {"failure": {"message": _failure_message(exc)}}
    if scope.timed_out is not None or exc is None:
        return "CUSTOM_TASK_TIMED_OUT", {"timeout_type": scope.timed_out}
    details = activity.cancellation_details() if activity.in_activity() else None
    if details is not None and details.timed_out:
        return "CUSTOM_TASK_TIMED_OUT", {"timeout_type": None}
    if details is not None and details.not_found and scope.heartbeat_missed:
        # Temporal refused a heartbeat that came after the heartbeat timeout.
        return "CUSTOM_TASK_TIMED_OUT", {"timeout_type": "HEARTBEAT"}
    if details is not None and details.worker_shutdown:
        message = "the worker shut down during the task; Temporal will retry the activity"
        return "CUSTOM_TASK_FAILED", {"failure": {"message": message}}
    reason = "cancel requested"
    if details is not None and (details.paused or details.reset):
        reason = "activity paused" if details.paused else "activity reset"
    return "CUSTOM_TASK_CANCELED", {"reason": reason}


def _failure_message(exc: BaseException) -> str:
    # Events are stored in clear text for the stream's whole retention.
    text = redact(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
