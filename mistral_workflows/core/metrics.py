"""What a worker's publishing measures, recorded through Temporal's metric meter.

The worker hands its Temporal runtime's meter to `PublishMetrics`, so the figures go
wherever the worker's Temporal metrics already go (Prometheus, OpenTelemetry), with no
dependency of our own. Counters are kept as plain integers on the hot path and added to
the meter about once a second and whenever an activity's events are all stored.
Histograms are recorded as they happen, at most one value per millisecond each (per task
for a task's gaps): a stream of thousands of events a second then costs a thousand
records, not one per event, and a slower one is recorded in full. Without a meter
(`NO_METRICS`), every call does nothing.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from mistral_workflows.core.encoding import event_size
from mistral_workflows.core.events import EventType

__all__ = [
    "ACK_LATENCY",
    "EVENTS",
    "EVENT_BYTES",
    "FAILURES",
    "FIRST_UPDATE",
    "FOLDED",
    "IN_FLIGHT",
    "NO_METRICS",
    "RECONNECTS",
    "RESENT",
    "SNAPSHOTS",
    "UPDATE_GAP",
    "WINDOW_FULL",
    "Meter",
    "PublishMetrics",
    "TaskWatch",
]

EVENTS = "mistral_workflows_events_published"
EVENT_BYTES = "mistral_workflows_event_bytes_published"
SNAPSHOTS = "mistral_workflows_snapshots_published"
RESENT = "mistral_workflows_events_resent"
FAILURES = "mistral_workflows_publish_failures"
RECONNECTS = "mistral_workflows_nats_reconnects"
WINDOW_FULL = "mistral_workflows_window_full_waits"
FOLDED = "mistral_workflows_updates_folded"
ACK_LATENCY = "mistral_workflows_publish_ack_latency"
IN_FLIGHT = "mistral_workflows_in_flight_events"
FIRST_UPDATE = "mistral_workflows_task_first_update_delay"
UPDATE_GAP = "mistral_workflows_task_update_gap"

_TICK = 1.0  # seconds between reports of the counters and the in-flight gauge
_SAMPLE = 0.001  # seconds: the most often a histogram records (per task for the gaps)
_STARTED = EventType.CUSTOM_TASK_STARTED
_IN_PROGRESS = EventType.CUSTOM_TASK_IN_PROGRESS


class _Counter(Protocol):
    def add(self, value: int) -> None: ...


class _Histogram(Protocol):
    def record(self, value: float) -> None: ...


class _Gauge(Protocol):
    def set(self, value: int) -> None: ...


class Meter(Protocol):
    """The part of `temporalio.common.MetricMeter` used here."""

    def create_counter(
        self, name: str, description: str | None = None, unit: str | None = None
    ) -> _Counter: ...

    def create_histogram_float(
        self, name: str, description: str | None = None, unit: str | None = None
    ) -> _Histogram: ...

    def create_gauge(
        self, name: str, description: str | None = None, unit: str | None = None
    ) -> _Gauge: ...

    def with_additional_attributes(self, additional_attributes: dict[str, str]) -> Meter: ...


class TaskWatch:
    """The pace of one task: time to its first update, gaps between its updates, and the
    updates folded into an event with others. This one measures nothing."""

    __slots__ = ()

    def event(self, event_type: str) -> None:
        """The task sent an event of `event_type`."""

    def folded(self) -> None:
        """An update of the task was folded into an event with earlier ones."""


class PublishMetrics:
    """The worker's publishing figures. This one records nothing (see `recording`)."""

    def sent(self, payload: bytes, headers: dict[str, str]) -> None:
        """An event was sent for the first time."""

    def snapshot_sent(self) -> None:
        """A task snapshot was sent (to the snapshot stream)."""

    def sending(self, sent_at: float) -> float:
        """An event first sent at `sent_at` (monotonic; 0: never) goes out now: returns
        when it was first sent (now, for a first send). Sending again (no acknowledgement
        in time, a reconnection...) is counted as a re-send."""
        return sent_at or time.monotonic()

    def acknowledged(self, sent_at: float) -> None:
        """An event first sent at `sent_at` (monotonic) was stored now."""

    def in_flight(self, n: int) -> None:
        """`n` events wait for their acknowledgement now."""

    def window_full(self) -> None:
        """A send waited for room in the window of unacknowledged events."""

    def reconnected(self) -> None:
        """The NATS connection was lost and made again."""

    def failed(self, n: int) -> None:
        """`n` events were given up: not stored within the persist timeout, or refused."""

    def task(self, task_type: str) -> TaskWatch:
        """A watch for one task of `task_type`."""
        return _NO_WATCH

    def report(self) -> None:
        """Add what was counted since the last report to the meter."""

    def close(self) -> None:
        """Report one last time and stop the periodic reports."""

    @staticmethod
    def recording(meter: Meter) -> PublishMetrics:
        """Figures recorded through `meter` (reported about once a second)."""
        return _Recording(meter)


_NO_WATCH = TaskWatch()
NO_METRICS = PublishMetrics()
"""Records nothing."""


class _Recording(PublishMetrics):
    def __init__(self, meter: Meter) -> None:
        self._meter = meter
        counter = meter.create_counter
        self._counters = {
            EVENTS: counter(EVENTS, "Events published (first sends)"),
            EVENT_BYTES: counter(EVENT_BYTES, "Bytes of the events published", "By"),
            SNAPSHOTS: counter(SNAPSHOTS, "Task snapshots published"),
            RESENT: counter(RESENT, "Events sent again"),
            FAILURES: counter(FAILURES, "Events given up (not stored)"),
            RECONNECTS: counter(RECONNECTS, "NATS reconnections"),
            WINDOW_FULL: counter(WINDOW_FULL, "Sends that waited for room in the window"),
            FOLDED: counter(FOLDED, "Updates folded into an event with others"),
        }
        self._counts = dict.fromkeys(self._counters, 0)
        self._ack = meter.create_histogram_float(
            ACK_LATENCY, "From an event's first send to its acknowledgement", "s"
        )
        self._in_flight = meter.create_gauge(
            IN_FLIGHT, "The most events waiting for their acknowledgement in the last second"
        )
        self._ack_recorded = 0.0
        self._peak = 0
        self._now = 0
        self._watches: dict[str, tuple[_Histogram, _Histogram]] = {}
        self._timer: asyncio.TimerHandle | None = None
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._schedule()

    def sent(self, payload: bytes, headers: dict[str, str]) -> None:
        counts = self._counts
        counts[EVENTS] += 1
        counts[EVENT_BYTES] += event_size(payload, headers)

    def snapshot_sent(self) -> None:
        self._counts[SNAPSHOTS] += 1

    def sending(self, sent_at: float) -> float:
        if sent_at:
            self._counts[RESENT] += 1
            return sent_at
        return time.monotonic()

    def acknowledged(self, sent_at: float) -> None:
        now = time.monotonic()
        if now - self._ack_recorded >= _SAMPLE:
            self._ack_recorded = now
            self._ack.record(now - sent_at)

    def in_flight(self, n: int) -> None:
        self._now = n
        if n > self._peak:
            self._peak = n

    def window_full(self) -> None:
        self._counts[WINDOW_FULL] += 1

    def reconnected(self) -> None:
        self._counts[RECONNECTS] += 1

    def failed(self, n: int) -> None:
        self._counts[FAILURES] += n

    def folded(self) -> None:
        self._counts[FOLDED] += 1

    def task(self, task_type: str) -> TaskWatch:
        histograms = self._watches.get(task_type)
        if histograms is None:
            meter = self._meter.with_additional_attributes({"task_type": task_type})
            histograms = (
                meter.create_histogram_float(
                    FIRST_UPDATE, "From a task's start to its first update event", "s"
                ),
                meter.create_histogram_float(UPDATE_GAP, "Between a task's update events", "s"),
            )
            self._watches[task_type] = histograms
        return _Watch(self, *histograms)

    def report(self) -> None:
        counts = self._counts
        for name, n in counts.items():
            if n:
                self._counters[name].add(n)
                counts[name] = 0
        self._in_flight.set(self._peak)
        self._peak = self._now

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._loop = None
        self.report()

    def _schedule(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._timer = self._loop.call_later(_TICK, self._tick)

    def _tick(self) -> None:
        self.report()
        self._schedule()


class _Watch(TaskWatch):
    __slots__ = ("_first", "_gap", "_gap_recorded", "_last", "_metrics", "_started")

    def __init__(self, metrics: _Recording, first: _Histogram, gap: _Histogram) -> None:
        self._metrics = metrics
        self._first = first
        self._gap = gap
        self._started = 0.0
        self._last = 0.0
        self._gap_recorded = 0.0

    def event(self, event_type: str) -> None:
        if event_type == _IN_PROGRESS:
            now = time.monotonic()
            if self._last:
                if now - self._gap_recorded >= _SAMPLE:
                    self._gap_recorded = now
                    self._gap.record(now - self._last)
            elif self._started:
                self._first.record(now - self._started)
            self._last = now
        elif event_type == _STARTED:
            self._started = time.monotonic()

    def folded(self) -> None:
        self._metrics.folded()
