"""`def` activities using `Task`, the thread-run twins of the async scenario activities."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.exceptions import CancelledError

with workflow.unsafe.imports_passed_through():
    import mistral_workflows as workflows
    from mistral_workflows import InvalidStateError
    from mistral_workflows.core.task import Task
    from tests.faults.worker_process import _count, _keep, _token
    from tests.interceptors.scenarios import FAST_RETRY, times_out


@workflows.activity()
def sync_flaky_stream(fail_times: int) -> str:
    """Streams a token, then fails on the first `fail_times` attempts."""
    with Task(type="tokens", state={"tokens": []}) as task:
        task.update_state({"tokens": [f"attempt-{activity.info().attempt}"]})
        if activity.info().attempt <= fail_times:
            raise RuntimeError(f"attempt {activity.info().attempt} failed")
    return "ok"


@workflows.activity()
def sync_too_slow() -> str:
    """Outlives its start-to-close timeout, updating now and then."""
    with Task(type="tokens", state={"n": 0}) as task:
        for i in range(1, 600):
            task.update_state({"n": min(i, 1)})
            time.sleep(0.05)
    return "never"


def _stream(counts: list[int], delay: float, before: Callable[[int], object]) -> str:
    """Streams `_count(counts)` tokens, `delay` seconds apart, calling `before(i)` ahead of
    token i; the last state is kept, however the attempt ends."""
    with Task(type="tokens", state={"tokens": []}) as task:
        try:
            for i in range(_count(counts)):
                before(i)
                task.update_state({"tokens": [*task.state["tokens"], _token(i)]})
                time.sleep(delay)
        finally:
            _keep(task)
    return f"attempt {activity.info().attempt}"


@workflows.activity()
def sync_stream_tokens(counts: list[int], delay: float) -> str:
    """Streams `_count(counts)` tokens, heartbeating before each one."""
    return _stream(counts, delay, lambda _: activity.heartbeat())


@workflows.activity(no_thread_cancel_exception=True)
def sync_polls_cancellation(counts: list[int], delay: float) -> str:
    """Like `sync_stream_tokens`, but asks temporalio not to raise in its thread: it polls
    `activity.is_cancelled()` and stops itself."""

    def heartbeat_or_stop(_: int) -> None:
        activity.heartbeat()
        if activity.is_cancelled():
            raise CancelledError("stopped on request")

    return _stream(counts, delay, heartbeat_or_stop)


@workflows.activity()
def sync_goes_quiet(quiet: list[int], counts: list[int], delay: float) -> str:
    """Streams, heartbeating before each token except, on the first attempt, tokens
    `quiet[0]` to `quiet[1] - 1`."""
    attempt = activity.info().attempt

    def heartbeat_unless_quiet(i: int) -> None:
        if attempt > 1 or not quiet[0] <= i < quiet[1]:
            activity.heartbeat()

    return _stream(counts, delay, heartbeat_unless_quiet)


@workflows.activity()
def sync_misuses() -> list[str]:
    """Each way of mixing the sync and async APIs, and of updating from another thread:
    the messages of the errors raised."""
    messages = []

    async def async_with_in_thread() -> None:
        async with Task(type="wrong", state={}):
            pass

    try:
        asyncio.run(async_with_in_thread())
    except RuntimeError as e:
        messages.append(str(e))
    with Task(type="right", state={"n": 0}) as task:
        errors: list[BaseException] = []

        def other_thread() -> None:
            try:
                task.update_state({"n": 1})
            except RuntimeError as e:
                errors.append(e)

        helper = threading.Thread(target=other_thread)
        helper.start()
        helper.join()
        messages.append(str(errors[0]))
        task.update_state({"n": 2})
    return messages


@workflows.activity()
async def async_uses_sync_api() -> list[str]:
    """`with Task(...)` in an async activity, and an `async with` task updated from a
    thread: the messages of the errors raised."""
    messages = []
    try:
        with Task(type="wrong", state={}):
            pass
    except RuntimeError as e:
        messages.append(str(e))
    async with Task(type="right", state={"n": 0}) as task:
        try:
            await asyncio.to_thread(task.update_state, {"n": 1})
        except RuntimeError as e:
            messages.append(str(e))
    return messages


@workflows.activity()
def sync_bad_inputs() -> list[str]:
    """Bad updates raise the same errors as in an async activity; the task goes on."""
    messages = []
    with Task(type="checked", state={"ok": 0}) as task:
        for bad in ({"s": {1}}, {"b": b"x"}, {"f": float("nan")}, {"big": "x" * 2_000_000}):
            try:
                task.update_state(bad)
            except (TypeError, ValueError) as e:
                messages.append(f"{type(e).__name__}: {e}")
        task.update_state({"ok": 2})
    return messages


class Progress(BaseModel):
    done: int = 0
    notes: list[str] = []


@workflows.activity()
def sync_set_state_and_model() -> list[Any]:
    """`set_state` with dict state, `update_state` with pydantic state (validated: a bad
    field raises and changes nothing); returns both final states."""
    with Task(type="plain", state={"a": 1, "b": [1]}) as plain:
        plain.set_state({"a": 2, "c": "x"})
    with Task(type="model", state=Progress()) as model:
        model.update_state({"done": 1, "notes": ["one"]})
        with contextlib.suppress(InvalidStateError):
            model.update_state({"done": "not a number"})
        model.update_state(Progress(done=2))
    return [plain.state, model.state.model_dump()]


SYNC_ACTIVITIES = [
    sync_flaky_stream,
    sync_too_slow,
    sync_stream_tokens,
    sync_polls_cancellation,
    sync_goes_quiet,
    sync_misuses,
    async_uses_sync_api,
    sync_bad_inputs,
    sync_set_state_and_model,
]


@workflow.defn
class SyncFlaky:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            sync_flaky_stream,
            2,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=FAST_RETRY,
        )


@workflow.defn
class SyncTimesOut:
    @workflow.run
    async def run(self) -> str:
        return await times_out(sync_too_slow)
