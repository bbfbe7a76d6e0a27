"""Worker metrics: after a known workload, Temporal's runtime holds the real figures."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import nats
import pytest
from temporalio.client import Client
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_GAUGE,
    BUFFERED_METRIC_KIND_HISTOGRAM,
    MetricBuffer,
    MetricBufferDurationFormat,
    Runtime,
    TelemetryConfig,
)

import mistral_workflows as workflows
from mistral_workflows import ConfigurationError, MistralWorkflowsPlugin, StreamEvent
from mistral_workflows.core import metrics, subjects
from mistral_workflows.core.encoding import event_size
from mistral_workflows.core.events import EventType
from mistral_workflows.core.task import Task
from mistral_workflows.dev import NatsServer
from tests.support import collect, running_worker, unique
from tests.workflows import Call, RunActivity

PACED, BURST = 5, 10
SERVER: list[NatsServer] = []
killed = asyncio.Event()


@workflows.activity()
async def paced_and_burst() -> str:
    async with Task(type="paced", state={"n": 0}) as task:
        for n in range(1, PACED + 1):
            await asyncio.sleep(0.01)  # each update its own event, a gap before each
            await task.update_state({"n": n})
    async with Task(type="burst", state={"n": 0}) as task:
        for n in range(1, BURST + 1):
            await task.update_state({"n": n})  # no yield: updates fold
    return "done"


@workflows.activity()
async def through_a_restart() -> str:
    async with Task(type="restarted", state={"n": 0}) as task:
        for n in range(1, 11):
            await task.update_state({"n": n})
            if n == 4:
                SERVER[0].kill()  # update 4's event is sent, not acknowledged
                killed.set()
            await asyncio.sleep(0.05)
    return "done"


class Figures:
    """What a `MetricBuffer` received, per metric name: counter sums, gauge values,
    histogram values by task type."""

    def __init__(self, buffer: MetricBuffer) -> None:
        self._buffer = buffer
        self.counters: dict[str, int] = defaultdict(int)
        self.gauges: dict[str, list[int]] = defaultdict(list)
        self.histograms: dict[tuple[str, str], list[float]] = defaultdict(list)

    def drain(self) -> Figures:
        for update in self._buffer.retrieve_updates():
            name, kind = update.metric.name, update.metric.kind
            if not name.startswith("mistral_workflows_"):
                continue
            if kind == BUFFERED_METRIC_KIND_COUNTER:
                self.counters[name] += int(update.value)
            elif kind == BUFFERED_METRIC_KIND_GAUGE:
                self.gauges[name].append(int(update.value))
            elif kind == BUFFERED_METRIC_KIND_HISTOGRAM:
                task_type = str(update.attributes.get("task_type", ""))
                self.histograms[name, task_type].append(float(update.value))
        return self


async def stored_sizes(nats_url: str, events: list[StreamEvent]) -> list[int]:
    """Each event's size as stored (payload and headers), read back from the stream."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sizes = []
        for event in events:
            msg = await js.get_msg(subjects.DEFAULT_STREAM_NAME, event.broker_sequence or 0)
            sizes.append(event_size(msg.data or b"", dict(msg.headers or {})))
        return sizes
    finally:
        await nc.close()


async def settled(figures: Figures, events: int, timeout: float = 10) -> Figures:
    """Drain until the events counter reaches `events` (the periodic report may be late
    on a loaded machine), or until `timeout`."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.2)):
        if figures.drain().counters[metrics.EVENTS] >= events or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)  # nothing to wait on: the report comes from a timer
    return figures


def in_progress(events: list[StreamEvent], task_type: str) -> int:
    return sum(
        e.data.event_type == EventType.CUSTOM_TASK_IN_PROGRESS and e.stream == task_type
        for e in events
    )


async def recorded_client(
    temporal_address: str, nats_url: str, **options: Any
) -> tuple[Client, Figures]:
    """A plugged client on a runtime of its own, whose metrics go to a buffer."""
    buffer = MetricBuffer(100_000, MetricBufferDurationFormat.SECONDS)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
    plugin = MistralWorkflowsPlugin(nats_url=nats_url, **options)
    client = await Client.connect(temporal_address, plugins=[plugin], runtime=runtime)
    return client, Figures(buffer)


async def run_workload(temporal_address: str, nats_url: str, queue: str, **options: Any):
    client, figures = await recorded_client(temporal_address, nats_url, **options)
    wf_id = unique("metrics")
    async with running_worker(client, queue, [RunActivity], [paced_and_burst]):
        await client.execute_workflow(
            RunActivity.run, Call("paced_and_burst"), id=wf_id, task_queue=queue
        )
        events = await collect(nats_url, workflow_exec_id=wf_id)
        if options.get("metrics", True):
            await settled(figures, len(events))
        else:
            await asyncio.sleep(1.5)  # past a periodic report, had there been one
    return figures.drain(), events


async def test_counts_after_a_known_workload_are_exact(temporal_address, nats_url, task_queue):
    """Events and bytes published match what the stream stored, acknowledgement latencies
    are recorded (at most one per millisecond), folded updates are the updates that got no
    event of their own, and a healthy run re-sends, reconnects and fails nothing."""
    figures, events = await run_workload(temporal_address, nats_url, task_queue)
    counters = figures.counters
    assert counters[metrics.EVENTS] == len(events)
    assert counters[metrics.EVENT_BYTES] == sum(await stored_sizes(nats_url, events))
    acks = figures.histograms[metrics.ACK_LATENCY, ""]
    assert 1 <= len(acks) <= len(events) + counters[metrics.SNAPSHOTS]
    assert counters[metrics.SNAPSHOTS] >= 4  # each task's start and end, at least
    assert all(latency >= 0 for latency in acks)
    updates = PACED + BURST
    assert counters[metrics.FOLDED] == updates - in_progress(events, "paced") - in_progress(
        events, "burst"
    )
    assert counters[metrics.FOLDED] >= BURST - 1  # the burst made no event per update
    for quiet in (metrics.RESENT, metrics.RECONNECTS, metrics.FAILURES, metrics.WINDOW_FULL):
        assert counters[quiet] == 0
    assert max(figures.gauges[metrics.IN_FLIGHT]) >= 1


async def test_task_pace_is_recorded_per_task_type(temporal_address, nats_url, task_queue):
    """Each task type gets one time-to-first-update, and one gap per later update event
    when they come more than a millisecond apart (faster ones are sampled)."""
    figures, events = await run_workload(temporal_address, nats_url, task_queue)
    histograms = figures.histograms
    for task_type in ("paced", "burst"):
        assert len(histograms[metrics.FIRST_UPDATE, task_type]) == 1
        gaps = histograms[metrics.UPDATE_GAP, task_type]
        assert len(gaps) <= in_progress(events, task_type) - 1
    assert len(histograms[metrics.UPDATE_GAP, "paced"]) == PACED - 1  # 10 ms apart
    assert in_progress(events, "paced") == PACED
    assert all(gap > 0 for gap in histograms[metrics.UPDATE_GAP, "paced"])


async def test_metrics_off_records_nothing(temporal_address, nats_url, task_queue):
    """Negative control: with `metrics=False` the runtime holds none of our figures after
    the same workload (which the tests above see)."""
    figures, events = await run_workload(temporal_address, nats_url, task_queue, metrics=False)
    assert events
    assert not figures.counters and not figures.histograms and not figures.gauges


async def test_a_restart_counts_one_reconnect_and_the_resent_events(
    temporal_address, task_queue, tmp_path
):
    """NATS killed and restarted mid-task: one reconnection, the unacknowledged event sent
    again (counted as a re-send, not as a new event), nothing given up."""
    killed.clear()
    with NatsServer(store_dir=tmp_path) as server:
        SERVER[:] = [server]
        client, figures = await recorded_client(temporal_address, server.url)
        wf_id = unique("restart")
        async with running_worker(client, task_queue, [RunActivity], [through_a_restart]):
            handle = await client.start_workflow(
                RunActivity.run, Call("through_a_restart"), id=wf_id, task_queue=task_queue
            )
            await asyncio.wait_for(killed.wait(), 30)
            await asyncio.sleep(0.5)
            server.restart()
            assert await asyncio.wait_for(handle.result(), 60) == "done"
            events = await collect(server.url, workflow_exec_id=wf_id)
            await settled(figures, len(events))
    counters = figures.counters
    assert counters[metrics.RECONNECTS] == 1
    assert counters[metrics.RESENT] >= 1
    assert counters[metrics.FAILURES] == 0
    assert counters[metrics.EVENTS] == len(events)  # re-sends are not new events


def test_the_switches_take_booleans_only():
    """A misspelt switch is a clear error when the plugin is built, not a silent choice."""
    with pytest.raises(ConfigurationError, match="tracing and metrics must be True or False"):
        MistralWorkflowsPlugin(metrics="off")  # type: ignore[arg-type]
