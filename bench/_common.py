"""Shared pieces of the benchmarks: result rows, a plugged worker, the report, token streams."""

from __future__ import annotations

import asyncio
import contextlib
import json
import platform
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
from nats.js.api import StorageType, StreamConfig
from nats.js.client import JetStreamContext
from temporalio.client import Client
from temporalio.worker import Worker

from mistral_workflows import MistralWorkflowsPlugin, TaskStates, subscribe
from mistral_workflows.core import subjects
from mistral_workflows.core.context import (
    ActivityRef,
    ExecutionContext,
    Scope,
    reset_scope,
    use_scope,
)
from mistral_workflows.core.emitter import Emitter
from mistral_workflows.core.publisher import Publisher
from mistral_workflows.worker import StreamSettings, provision


@dataclass
class Row:
    """One measured figure, with what it is compared to and the goal."""

    bench: str
    figure: str
    value: float
    unit: str
    goal: str = ""
    met: bool | None = None


@dataclass
class Servers:
    nats_url: str
    temporal_address: str


@asynccontextmanager
async def plugged_worker(
    servers: Servers,
    workflows: Sequence[type],
    activities: Sequence[Callable[..., Any]],
    plugin: bool = True,
) -> AsyncIterator[tuple[Client, str]]:
    """A client and a running worker on a fresh task queue."""
    plugins = [MistralWorkflowsPlugin(nats_url=servers.nats_url)] if plugin else []
    client = await Client.connect(servers.temporal_address, plugins=plugins)
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=workflows, activities=activities):
        yield client, queue


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(rows: Sequence[Row], path: Path | None) -> str:
    """The table as text; the rows as JSON in `path`."""
    lines = [f"{'bench':<12} {'figure':<58} {'value':>12} {'unit':<8} goal"]
    for r in rows:
        mark = "" if r.met is None else (" ok" if r.met else " MISSED")
        lines.append(f"{r.bench:<12} {r.figure:<58} {r.value:>12.4g} {r.unit:<8} {r.goal}{mark}")
    if path is not None:
        machine = {"machine": platform.machine(), "python": platform.python_version()}
        path.write_text(json.dumps({**machine, "rows": [asdict(r) for r in rows]}, indent=1))
    return "\n".join(lines)


@asynccontextmanager
async def direct_emitter(url: str, exec_id: str) -> AsyncIterator[Emitter]:
    """An activity-like publishing scope on a real connection, without Temporal around it,
    so that a benchmark times the library's own work."""
    nc = await nats.connect(url)
    await provision(nc.jetstream(), StreamSettings())
    publisher = Publisher(
        nc,
        stream_name=subjects.DEFAULT_STREAM_NAME,
        prefix=subjects.DEFAULT_PREFIX,
        max_event_bytes=1 << 20,
    )
    context = ExecutionContext("default", "Bench", exec_id, "run", exec_id, None)
    ref = ActivityRef("1", "bench", 1)
    emitter = publisher.emitter(context, ref)
    token = use_scope(Scope(context, ref, emitter))
    try:
        yield emitter
        await emitter.flush()
    finally:
        reset_scope(token)
        await nc.close()


@asynccontextmanager
async def scratch_stream(url: str, name: str) -> AsyncIterator[JetStreamContext]:
    """A fresh file-storage stream `name` capturing `<name>.>`, for raw baselines."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_stream(name)
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"], storage=StorageType.FILE))
    try:
        yield js
    finally:
        await js.delete_stream(name)
        await nc.close()


@asynccontextmanager
async def busy_worker(
    servers: Servers,
    name: str,
    workflows: Sequence[type],
    activities: Sequence[Callable[..., Any]],
    n: int,
) -> AsyncIterator[tuple[Client, str]]:
    """A client and a connected, plugged worker that runs n activities at once, on a fresh
    task queue `bench-<name>-…`."""
    plugin = MistralWorkflowsPlugin(nats_url=servers.nats_url)
    client = await Client.connect(servers.temporal_address, plugins=[plugin])
    queue = f"bench-{name}-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=workflows,
        activities=activities,
        max_concurrent_activities=max(n, 1),
    ):
        await plugin.wait_connected()
        yield client, queue


class StartLine:
    """Holds each activity until `expected` of them run, so that the streams begin all at
    once, as under a peak load, rather than as the starts trickle in."""

    def __init__(self, expected: int, timeout: float = 120.0) -> None:
        self.expected = expected
        self.timeout = timeout
        self.running = 0
        self.peak = 0
        self._all_running = asyncio.Event()

    async def arrive(self) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        if self.running >= self.expected:
            self._all_running.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_running.wait(), self.timeout)

    def leave(self) -> None:
        self.running -= 1


def token(k: int, i: int) -> str:
    """Token i of activity k: every stream's text is its own."""
    return f"{k}.{i} "


def add_token(state: dict[str, Any], tok: str) -> dict[str, Any]:
    """A token stream's state with `tok` appended."""
    return {"tokens": [*state["tokens"], tok], "text": state["text"] + tok}


def final_state(k: int, tokens: int) -> dict[str, Any]:
    """The state of activity k's stream once its `tokens` tokens are made."""
    made = [token(k, i) for i in range(tokens)]
    return {"tokens": made, "text": "".join(made)}


async def read_tasks(url: str, exec_id: str, stream: str, n: int) -> tuple[TaskStates, int]:
    """Rebuild the tasks of a run with one subscription, until n of them completed (or the
    stream is idle); returns them and the events read."""
    states = TaskStates()
    count = completed = 0
    async for event in subscribe(url, workflow_exec_id=exec_id, stream=stream, idle_timeout=10):
        count += 1
        task = states.apply(event)
        if task is not None and task.status == "completed":
            completed += 1
            if completed == n:
                break
    return states, count


def check_token_tasks(states: TaskStates, n: int, tokens: int) -> None:
    """Raises if one of the n token streams is missing, or not completed with its final
    state."""
    seen = set()
    for task in states:
        made = task.state["tokens"] if isinstance(task.state, dict) else None
        k = int(made[0].split(".")[0]) if made else -1
        if task.status != "completed" or task.state != final_state(k, tokens):
            raise AssertionError(f"task {task.task_id} ({task.status}) rebuilt wrong")
        seen.add(k)
    if seen != set(range(n)):
        raise AssertionError(f"{n - len(seen)} of {n} tasks missing")
