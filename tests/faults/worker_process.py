"""The fault tests' workflow, activities and checks, and a plugged worker to run in its own process.

    python -m tests.faults.worker_process TEMPORAL_ADDRESS NATS_URL TASK_QUEUE READY_FILE

serves the activities below on TASK_QUEUE, creates READY_FILE once it is connected to NATS
and polling, and exits when its standard input closes (so it never outlives the test that
started it). A test kills it by its process id. The same workflow and activities also run
on in-process workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    import mistral_workflows as workflows
    from mistral_workflows import StreamEvent, TaskStates, subscribe
    from mistral_workflows.core.events import CUSTOM_TASK_EVENT_TYPES, EventType
    from mistral_workflows.core.task import Task

# The state each attempt had when it left its task: (workflow id, attempt) -> state.
# Filled only by in-process workers; the tests compare it with what consumers rebuild.
LAST_STATES: dict[tuple[str, int], Any] = {}


@dataclass
class Plan:
    """One activity call and its options."""

    activity: str
    task_queue: str
    args: list[Any] = field(default_factory=list)
    start_to_close: float = 30.0
    heartbeat: float | None = None
    attempts: int = 3
    cancellation: str = "TRY_CANCEL"


@workflow.defn
class RunPlan:
    """Runs one activity with the plan's options; cancels it when signalled."""

    def __init__(self) -> None:
        self._cancel = False

    @workflow.signal
    def cancel(self) -> None:
        self._cancel = True

    @workflow.run
    async def run(self, plan: Plan) -> Any:
        handle = workflow.start_activity(
            plan.activity,
            args=plan.args,
            task_queue=plan.task_queue,
            start_to_close_timeout=timedelta(seconds=plan.start_to_close),
            heartbeat_timeout=timedelta(seconds=plan.heartbeat) if plan.heartbeat else None,
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=100),
                backoff_coefficient=1.0,
                maximum_attempts=plan.attempts,
            ),
            cancellation_type=workflow.ActivityCancellationType[plan.cancellation],
        )
        await workflow.wait_condition(lambda: self._cancel or handle.done())
        if self._cancel:
            handle.cancel()
        try:
            return await handle
        except ActivityError as e:
            return f"activity error: {type(e.cause).__name__}"


def _count(counts: Sequence[int]) -> int:
    """The number of tokens this attempt streams: one count per attempt, the last repeats."""
    return counts[min(activity.info().attempt, len(counts)) - 1]


def _token(i: int) -> str:
    return f"{activity.info().attempt}-{i}"


def _keep(task: Task[Any]) -> None:
    info = activity.info()
    LAST_STATES[(info.workflow_id, info.attempt)] = copy.deepcopy(task.state)


@workflows.activity()
async def stream_tokens(counts: list[int], delay: float) -> str:
    """Streams `_count(counts)` tokens, heartbeating before each one."""
    async with Task(type="tokens", state={"tokens": []}) as task:
        try:
            for i in range(_count(counts)):
                activity.heartbeat()
                await task.update_state({"tokens": [*task.state["tokens"], _token(i)]})
                await asyncio.sleep(delay)
        finally:
            _keep(task)
    return f"attempt {activity.info().attempt}"


@workflows.activity()
async def ignores_cancellation(counts: list[int], delay: float) -> str:
    """Streams without heartbeats and carries on when cancelled (a catch-all retry loop)."""
    async with Task(type="tokens", state={"tokens": []}) as task:
        for i in range(_count(counts)):
            await task.update_state({"tokens": [*task.state["tokens"], _token(i)]})
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(delay)
        _keep(task)
    return f"attempt {activity.info().attempt}"


@workflows.activity()
async def goes_quiet(quiet: list[int], counts: list[int], delay: float) -> str:
    """Streams, heartbeating before each token except, on the first attempt, tokens
    `quiet[0]` to `quiet[1] - 1`."""
    attempt = activity.info().attempt
    async with Task(type="tokens", state={"tokens": []}) as task:
        try:
            for i in range(_count(counts)):
                if attempt > 1 or not quiet[0] <= i < quiet[1]:
                    activity.heartbeat()
                await task.update_state({"tokens": [*task.state["tokens"], _token(i)]})
                await asyncio.sleep(delay)
        finally:
            _keep(task)
    return f"attempt {attempt}"


ACTIVITIES = [stream_tokens, ignores_cancellation, goes_quiet]


# --- consumer side -----------------------------------------------------------------------


async def wait_for_event(
    nats_url: str, workflow_id: str, done: Callable[[StreamEvent], bool], timeout: float = 30
) -> list[StreamEvent]:
    """Follow the workflow's events until one satisfies `done`; return those seen so far."""
    seen: list[StreamEvent] = []

    async def follow() -> None:
        events = subscribe(nats_url, workflow_exec_id=workflow_id)
        async with contextlib.aclosing(events):
            async for event in events:
                seen.append(event)
                if done(event):
                    return

    await asyncio.wait_for(follow(), timeout)
    return seen


def attempt_of(event: StreamEvent) -> int | None:
    """The activity attempt that published `event` (None for workflow code)."""
    return event.activity_context.attempt if event.activity_context else None


def kinds(events: Sequence[StreamEvent], attempt: int | None = None) -> list[str]:
    """Event types in stream order: all of them, or one activity attempt's."""
    return [e.data.event_type for e in events if attempt is None or attempt_of(e) == attempt]


def task_sequences(events: Sequence[StreamEvent], attempt: int) -> list[int]:
    """The `task_sequence` of one attempt's task events, in stream order."""
    return [
        e.data.attributes.task_sequence
        for e in events
        if attempt_of(e) == attempt and e.data.event_type in CUSTOM_TASK_EVENT_TYPES
    ]


def duplicate_ids(events: Sequence[StreamEvent]) -> list[str]:
    """Event ids that appear more than once."""
    return [i for i, n in Counter(e.data.event_id for e in events).items() if n > 1]


def check_attempt(events: Sequence[StreamEvent], attempt: int, ending: Sequence[str]) -> Any:
    """Check one attempt's events and return the state they rebuild.

    The attempt starts, its task starts, updates follow, then `ending`; its task events
    are numbered 0, 1, 2... in stream order, none missing or repeated.
    """
    got = kinds(events, attempt)
    updates = got.count(EventType.CUSTOM_TASK_IN_PROGRESS)
    assert got == [
        EventType.ACTIVITY_TASK_STARTED,
        EventType.CUSTOM_TASK_STARTED,
        *[EventType.CUSTOM_TASK_IN_PROGRESS] * updates,
        *ending,
    ]
    numbers = task_sequences(events, attempt)
    assert numbers == list(range(len(numbers)))
    states = TaskStates()
    for event in events:
        if attempt_of(event) == attempt:
            states.apply(event)
    (task,) = states
    return task.state


def tokens(attempt: int, n: int) -> dict[str, list[str]]:
    """The state of an attempt of `stream_tokens` after `n` tokens."""
    return {"tokens": [f"{attempt}-{i}" for i in range(n)]}


# --- the worker process -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def worker_process(
    temporal_address: str, nats_url: str, task_queue: str, where: Path
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """A plugged worker in its own process, serving ACTIVITIES; killed on exit if alive."""
    ready = where / f"ready-{uuid.uuid4().hex}"
    process = _start([temporal_address, nats_url, task_queue, str(ready)], ready)
    try:
        for _ in range(600):
            if ready.exists() or process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        if not ready.exists():
            raise RuntimeError(f"the worker process did not start:\n{_log(ready).read_text()}")
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdin is not None:
            process.stdin.close()


def _log(ready: Path) -> Path:
    return ready.with_name(f"{ready.name}.log")


def _start(args: list[str], ready: Path) -> subprocess.Popen[bytes]:
    repo = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "tests.faults.worker_process", *args]
    with _log(ready).open("wb") as out:
        return subprocess.Popen(
            command, cwd=repo, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT
        )


async def _serve(temporal_address: str, nats_url: str, task_queue: str, ready: Path) -> None:
    from temporalio.client import Client
    from temporalio.worker import Worker

    plugin = workflows.MistralWorkflowsPlugin(nats_url=nats_url)
    client = await Client.connect(temporal_address, plugins=[plugin])
    async with Worker(client, task_queue=task_queue, activities=ACTIVITIES):
        await asyncio.wait_for(plugin.wait_connected(), 30)
        ready.touch()  # noqa: ASYNC240
        await asyncio.to_thread(sys.stdin.buffer.read)  # until the parent closes the pipe


if __name__ == "__main__":
    address, url, queue, ready_file = sys.argv[1:]
    asyncio.run(_serve(address, url, queue, Path(ready_file)))
