"""Shared pieces of the benchmarks: result rows, a plugged worker, the report."""

from __future__ import annotations

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

from mistral_workflows import MistralWorkflowsPlugin
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
