"""`Task` in `def` activities: Temporal runs those in a thread pool, and the task's events
are published by the worker's event loop.

Each call the thread makes (`with Task(...)`, `update_state`, `set_state`, leaving the
block) runs the task's own coroutine on the loop and waits for its outcome: the same checks,
events, errors and guarantees as in an `async def` activity, and the thread never touches
the NATS client. While it waits, temporalio's cancellation exception is held back, so it
arrives between two calls, never in the middle of one.
"""

from __future__ import annotations

import asyncio
import threading
import types
from collections.abc import Callable, Coroutine, Generator
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import CancelledError

from mistral_workflows.core.context import Scope

__all__ = ["ASYNC_IN_THREAD", "LoopBridge", "running_loop"]

T = TypeVar("T")

ASYNC_IN_THREAD = (
    "`async with Task(...)` runs on the worker's event loop, in an `async def` activity; "
    "in a `def` activity (which Temporal runs in a thread) use `with Task(...) as task:` "
    "and call `task.update_state(...)` without await"
)
_SYNC_ON_LOOP = (
    "`with Task(...)` is for `def` activities, which Temporal runs in a thread; in an "
    "`async def` activity use `async with Task(...) as task:` and "
    "`await task.update_state(...)`"
)


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class LoopBridge:
    """Runs one task's coroutines on the worker's loop for the thread that entered it."""

    def __init__(self, scope: Scope) -> None:
        if running_loop() is not None:
            raise RuntimeError(_SYNC_ON_LOOP)
        if scope.loop is None:
            raise RuntimeError(
                "`with Task(...)` works in a `def` activity of a plugged worker; in workflow "
                "code use `async with Task(...)`"
            )
        self._scope = scope
        self._loop = scope.loop
        self.thread = threading.get_ident()
        # One call at a time: the loop releases this lock when the call is done (lighter
        # than a concurrent future per call; see `_take` for the loop's side).
        self._done = threading.Lock()
        self._done.acquire()
        self._outcome: tuple[bool, Any] = (True, None)
        self._waiting: asyncio.Task[None] | None = None  # a call that had to wait
        # While a call waits for the loop, temporalio's cancellation exception is held back.
        self._shield: Callable[[], AbstractContextManager[None]] = (
            activity.shield_thread_cancel_exception if activity.in_activity() else nullcontext
        )

    def call(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """Run `fn(*args)` on the loop and return its result (or raise its error).

        Raises:
            temporalio.exceptions.CancelledError: the library ended the attempt at its
                deadline (start-to-close, schedule-to-close or heartbeat timeout); the
                thread stops at its next call, as an `async def` activity does at its
                next await.
        """
        timed_out = self._scope.timed_out
        if timed_out is not None:
            raise CancelledError(f"activity {timed_out} timeout")
        return self.finish(fn, *args)

    def finish(
        self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any, last: bool = False
    ) -> T:
        """Like `call`, also once the attempt has timed out (to end the task); `last`
        says that no call follows."""
        if self._loop.is_closed():
            raise RuntimeError(
                "the worker that ran this activity has stopped; its tasks cannot publish"
            )
        call = (fn(*args), last)
        with self._shield():
            self._loop.call_soon_threadsafe(self._take, call)
            self._done.acquire()
        ok, value = self._outcome
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop serving calls (when no `last` call will come)."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop)

    def _stop(self) -> None:
        if self._waiting is not None and not self._waiting.done():
            self._waiting.cancel()

    def _take(self, call: _Call) -> None:
        """On the loop: run the call's coroutine until it finishes or has to wait (most
        calls never wait: they only stage and hand an event to the connection); a call
        that has to wait goes on in a task of its own. Lighter than handing each call to a
        serving task, which matters at one call per update."""
        coroutine = call[0]
        try:
            waits_for = coroutine.send(None)
        except StopIteration as done:
            self._outcome = (True, done.value)
        except BaseException as e:
            self._outcome = (False, e)
        else:
            self._waiting = self._loop.create_task(self._go_on(coroutine, waits_for))
            return
        self._done.release()

    async def _go_on(self, coroutine: Coroutine[Any, Any, Any], waits_for: Any) -> None:
        try:
            self._outcome = (True, await _resume(coroutine, waits_for))
        except BaseException as e:
            self._outcome = (False, e)
        finally:
            self._waiting = None
            self._done.release()


@types.coroutine
def _resume(coroutine: Coroutine[Any, Any, T], waits_for: Any) -> Generator[Any, Any, T]:
    """Go on with a coroutine that was started outside of a task and is waiting for
    `waits_for` (what it yielded): the task running this one passes it what it waited for,
    or the exception thrown in (a cancellation), as if it had run the coroutine itself."""
    while True:
        try:
            sent = yield waits_for
        except BaseException as e:
            try:
                waits_for = coroutine.throw(e)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
        else:
            try:
                waits_for = coroutine.send(sent)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]


_Call = tuple[Coroutine[Any, Any, Any], bool]
