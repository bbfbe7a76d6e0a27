"""`Task`: a piece of work whose state streams to consumers as it changes.

    async with Task(type="token-stream", state={"tokens": []}) as task:
        await task.update_state({"tokens": task.state["tokens"] + [token]})

Entering publishes CUSTOM_TASK_STARTED with the initial state; each update that changes
something publishes CUSTOM_TASK_IN_PROGRESS with a JSON patch; leaving publishes
CUSTOM_TASK_COMPLETED with the final state, or CUSTOM_TASK_FAILED / _CANCELED /
_TIMED_OUT when an exception leaves the block (the exception always propagates). A block
left normally with the state changed in place to something that cannot be sent ends with
CUSTOM_TASK_FAILED naming the problem, and raises it. Every way out publishes exactly one
terminal event, after every update that was accepted.

In a `def` activity (which Temporal runs in a thread), the same task is used with `with`:

    with Task(type="progress", state={"done": 0}) as task:
        task.update_state({"done": 1})

and each call runs on the worker's event loop (`task_thread.py`).

`Task` checks what the user gives it; its `TaskWriter` (`task_writer.py`) numbers, folds,
sizes and sends the events.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Generator, Mapping
from types import TracebackType
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import activity
from temporalio.exceptions import CancelledError

from mistral_workflows.core.context import Scope, current_scope
from mistral_workflows.core.envelope import failure_message, stable_id
from mistral_workflows.core.errors import ConfigurationError, InvalidStateError
from mistral_workflows.core.events import EventType
from mistral_workflows.core.json_value import JSON, short_repr, to_json, utf8_safe
from mistral_workflows.core.subjects import validate_stream_type
from mistral_workflows.core.task_thread import ASYNC_IN_THREAD, LoopBridge, running_loop
from mistral_workflows.core.task_writer import TaskWriter

__all__ = ["Task"]

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
        shadow = _as_json(self._state)
        self.id: str = self._derive_id() if id is None else _custom_id(id)
        # Event ids (JetStream's message ids, for deduplication) are built from this key:
        # unique to the task in its activity, and safe in a header whatever the id holds.
        key = self.id if id is None else self._scoped(self.id)
        writer = functools.partial(TaskWriter, self._scope, self.type, self.id, key, shadow)
        # In a `def` activity's thread, the writer is made on the loop, where it works.
        self._writer: TaskWriter
        self._new_writer = writer if self._scope.loop and not running_loop() else None
        if self._new_writer is None:
            self._writer = writer()
        self._entered = False
        self._finished = False
        self._bridge: LoopBridge | None = None  # set by `with`: a def activity's thread
        self._thread = 0  # the thread that entered the task (0: not checked)

    @property
    def state(self) -> S:
        """The current state (the same object across updates for dict state)."""
        return self._state  # type: ignore[no-any-return]

    async def __aenter__(self) -> Task[S]:
        loop = self._scope.loop
        if loop is not None and running_loop() is not loop:
            raise RuntimeError(ASYNC_IN_THREAD)
        await self._enter()
        if loop is not None:  # (workflow code may run on another thread at each activation)
            self._thread = threading.get_ident()
        return self

    def __enter__(self) -> Task[S]:
        bridge = LoopBridge(self._scope)
        entered_before = self._entered
        try:
            bridge.call(self._enter)
        except BaseException as e:
            if entered_before or not self._entered:
                bridge.close()
                raise
            # Cancelled as the task started: it still ends with one terminal event.
            bridge.finish(self.__aexit__, type(e), e, e.__traceback__, last=True)
            raise
        self._bridge, self._thread = bridge, bridge.thread
        return self

    async def _enter(self) -> None:
        if self._entered:
            raise RuntimeError("a Task can be entered only once; create a new Task instead")
        self._entered = True
        if self._new_writer is not None:
            self._writer, self._new_writer = self._new_writer(), None
        await self._writer.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finished = True
        writer = self._writer
        await writer.close()
        if exc is None and self._scope.timed_out is None:
            # The state may also have been changed in place, without an update.
            await writer.complete(lambda: _as_json(self._state))
            return
        # Also a block left normally after the library ended the attempt at its deadline.
        # The state's changes in place are not looked at: the exception says what happened.
        await writer.end(*_terminal_event(exc, self._scope))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._bridge is not None
        self._bridge.finish(self.__aexit__, exc_type, exc, tb, last=True)

    def update_state(self, updates: Mapping[str, Any] | BaseModel) -> Awaitable[None]:
        """Merge `updates` into the state and publish the change as a JSON patch.

        Await it in an `async def` activity; in a `def` activity (`with Task(...)`) just
        call it: it returns once the update is accepted.

        Only the given top-level keys are compared, so the cost follows the size of the
        change, not of the state. An update that changes nothing publishes nothing.

        Raises:
            InvalidStateError: the update is not JSON (or does not validate against the
                state's pydantic model); the state is unchanged.
            PayloadTooLargeError: the event or the state would exceed the size limit; the
                state is unchanged.
        """
        self._check_open()
        if self._bridge is None:
            return self._update_state(updates)
        self._bridge.call(self._update_state, updates)
        return _DONE

    async def _update_state(self, updates: Mapping[str, Any] | BaseModel) -> None:
        if self._state is None:
            raise InvalidStateError(
                f"task {self.type!r} was created without state; pass state={{...}} to "
                "Task(...) to stream updates"
            )
        if isinstance(self._state, BaseModel):
            merged, changes = _merge_model(self._state, updates)
            await self._writer.update(changes)
            self._state = merged
        else:
            plain = _as_mapping(updates)
            await self._writer.update(plain)
            self._state.update(plain)

    def set_state(self, new_state: S) -> Awaitable[None]:
        """Replace the whole state and publish the difference as a JSON patch.

        Await it in an `async def` activity; in a `def` activity just call it.

        Raises:
            InvalidStateError: `new_state` is not JSON (or not the state's model type).
            PayloadTooLargeError: the event or the state would exceed the size limit.
        """
        self._check_open()
        if self._bridge is None:
            return self._set_state(new_state)
        self._bridge.call(self._set_state, new_state)
        return _DONE

    async def _set_state(self, new_state: S) -> None:
        live = _initial_live_state(new_state)
        if isinstance(self._state, BaseModel) and not isinstance(live, type(self._state)):
            live = _validate_model(type(self._state), live)
        await self._writer.replace(_as_json(live))
        self._state = live

    def _check_open(self) -> None:
        if not self._entered or self._finished:
            raise RuntimeError(
                "update the state inside `async with Task(...) as task:` (`with Task(...) "
                "as task:` in a `def` activity), not before or after"
            )
        if self._thread and threading.get_ident() != self._thread:
            raise RuntimeError(_OTHER_THREAD_ASYNC if self._bridge is None else _OTHER_THREAD_SYNC)

    def _scoped(self, custom_id: str) -> str:
        ctx, act = self._scope.context, self._scope.activity
        where = [ctx.namespace, ctx.workflow_exec_id, ctx.workflow_run_id]
        return stable_id(*where, act.activity_id if act else "", "custom id", custom_id)

    def _derive_id(self) -> str:
        ctx, act = self._scope.context, self._scope.activity
        ordinal = self._scope.next_task_ordinal(self.type)
        where = [ctx.namespace, ctx.workflow_exec_id, ctx.workflow_run_id]
        return stable_id(*where, act.activity_id if act else "", self.type, str(ordinal))


_OTHER_THREAD_ASYNC = (
    "this Task was entered with `async with` on the worker's event loop: update it there "
    "with `await task.update_state(...)`, not from another thread (work that runs in a "
    "thread belongs in a `def` activity, which uses `with Task(...) as task:`)"
)
_OTHER_THREAD_SYNC = (
    "this Task was entered with `with` in a `def` activity's thread: update it from the "
    "thread that entered it, not from threads that one starts"
)


class _Done:
    """What `update_state` returns in a `def` activity: the update is already done."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield


_DONE = _Done()


def _custom_id(task_id: object) -> str:
    if isinstance(task_id, str) and task_id and (task_id.isascii() or utf8_safe(task_id)):
        return task_id
    raise ConfigurationError(
        f"Task id must be a non-empty str without lone surrogates, not {short_repr(task_id)};"
        " leave it out to get a deterministic id derived from the workflow run and the activity"
    )


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


def _terminal_event(exc: BaseException | None, scope: Scope) -> tuple[EventType, dict[str, Any]]:
    """The event that ends a task left by `exc` (None: left normally after the attempt's
    deadline), following the attempt's timeout, then Temporal's cancellation cause."""
    if exc is not None and not _is_cancellation(exc, scope):
        return EventType.CUSTOM_TASK_FAILED, {"failure": {"message": failure_message(exc)}}
    if scope.timed_out is not None or exc is None:
        return EventType.CUSTOM_TASK_TIMED_OUT, {"timeout_type": scope.timed_out}
    details = activity.cancellation_details() if activity.in_activity() else None
    if details is not None and details.timed_out:
        return EventType.CUSTOM_TASK_TIMED_OUT, {"timeout_type": None}
    if details is not None and details.not_found and scope.heartbeat_missed:
        # Temporal refused a heartbeat that came after the heartbeat timeout.
        return EventType.CUSTOM_TASK_TIMED_OUT, {"timeout_type": "HEARTBEAT"}
    if details is not None and details.worker_shutdown:
        message = "the worker shut down during the task; Temporal will retry the activity"
        return EventType.CUSTOM_TASK_FAILED, {"failure": {"message": message}}
    reason = "cancel requested"
    if details is not None and (details.paused or details.reset):
        reason = "activity paused" if details.paused else "activity reset"
    return EventType.CUSTOM_TASK_CANCELED, {"reason": reason}


def _is_cancellation(exc: BaseException, scope: Scope) -> bool:
    """Whether `exc` is how the attempt was cancelled: asyncio's in an `async def`
    activity, temporalio's raised in the thread of a `def` activity (or by the library at
    the attempt's deadline)."""
    if isinstance(exc, asyncio.CancelledError):
        return True
    if not isinstance(exc, CancelledError):
        return False
    return scope.timed_out is not None or (activity.in_activity() and activity.is_cancelled())
