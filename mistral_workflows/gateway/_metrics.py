"""Prometheus metrics of the gateway, served at `/metrics`.

They are measured where the bytes leave the application (an ASGI middleware), whatever
route produced them: open event streams, events and their bytes sent, the delivery lag of
each event (now minus the time its producer created it), and errors by kind (the `error`
code of a JSON error response, or of an `error` or `gap` message within a stream).

The middleware reads the SSE messages of a stream as they are sent, unless the response
counts its events itself through the `Meter` it finds in its scope (under `METER`): the
shared reads' viewers do, from the batches they write, so that the same batch written to a
thousand viewers is not read a thousand times. The counts are plain integers, read at each
scrape; the lags of one batch sent to many viewers within a millisecond are binned once.
"""

from __future__ import annotations

import re
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mistral_workflows.gateway._batch import Batch

__all__ = ["LAG_BUCKETS", "METER", "GatewayMetrics", "Meter", "MetricsMiddleware"]

PREFIX = "mistral_workflows_gateway"
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
"""Upper bounds (seconds) of the delivery lag histogram: live events take milliseconds;
stored events read on a resume or a late start land in the last buckets."""
# Error bodies are short; a longer one is not parsed for its code.
_ERROR_BODY_LIMIT = 64 * 1024
_EVENT = b"workflow.event"
_TIMESTAMP_KEY = b'"event_timestamp":'
_DIGITS = re.compile(rb"\s*(\d{1,20})(?=[\s,}])")
UNMEASURED = frozenset({"/healthz", "/readyz", "/metrics"})
METER = "mistral_workflows.meter"
"""The scope key of a response's `Meter`."""
# Sends of one batch within this many seconds of each other are binned with one lag.
_SAME_TIME = 0.001


class _Deliveries:
    """Events sent on event streams, their bytes and their delivery lags, as a collector
    of the registry (read at each scrape)."""

    def __init__(self) -> None:
        self.events = 0
        self.bytes = 0
        self._counts = [0] * (len(LAG_BUCKETS) + 1)
        self._sum = 0.0
        # Consecutive sends of the same events at about the same time, binned together.
        self._run: Sequence[int] = ()
        self._run_at = 0.0
        self._run_times = 0

    def add(self, events: int, size: int, stamps: Sequence[int], now: float) -> None:
        """`events` events of `size` bytes sent at `now`; `stamps`: the creation times
        (Unix nanoseconds) of those that have one."""
        self.events += events
        self.bytes += size
        if stamps is self._run and now - self._run_at < _SAME_TIME:
            self._run_times += 1
            return
        self._bin()
        self._run, self._run_at, self._run_times = stamps, now, 1

    def _bin(self) -> None:
        times, at = self._run_times, self._run_at
        counts = self._counts
        for stamp in self._run:
            lag = max(at - stamp / 1e9, 0.0)
            counts[bisect_left(LAG_BUCKETS, lag)] += times
            self._sum += lag * times
        self._run, self._run_times = (), 0

    def collect(self) -> Iterator[Metric]:
        self._bin()
        yield CounterMetricFamily(
            f"{PREFIX}_events_served", "Events sent on event streams", value=self.events
        )
        yield CounterMetricFamily(
            f"{PREFIX}_event_bytes",
            "Bytes of the event messages sent on event streams (SSE framing included)",
            value=self.bytes,
        )
        buckets, total = [], 0
        for bound, count in zip((*map(repr, LAG_BUCKETS), "+Inf"), self._counts, strict=True):
            total += count
            buckets.append((bound, float(total)))
        yield HistogramMetricFamily(
            f"{PREFIX}_delivery_lag_seconds",
            "Time from an event's creation by its producer to its sending by the gateway",
            buckets=buckets,
            sum_value=self._sum,
        )


class GatewayMetrics:
    """The gateway's metrics, in a registry of their own (one per application)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.open_streams = Gauge(
            f"{PREFIX}_open_streams", "Event streams open now", registry=registry
        )
        self.deliveries = _Deliveries()
        registry.register(self.deliveries)
        self.errors = Counter(
            f"{PREFIX}_errors",
            "Error responses and in-stream error messages, by their error code",
            ["kind"],
            registry=registry,
        )
        self.nats_connected = Gauge(
            f"{PREFIX}_nats_connected",
            "1 while the gateway's NATS connection is up, 0 while it is down",
            registry=registry,
        )

    def watch_connection(self, connected: Callable[[], bool]) -> None:
        """Read `nats_connected` from `connected` at each scrape."""
        self.nats_connected.set_function(lambda: 1.0 if connected() else 0.0)

    async def endpoint(self, request: Request) -> Response:
        """`GET /metrics`: the Prometheus text format."""
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    def error(self, kind: str) -> None:
        """Count one error of `kind`."""
        self.errors.labels(kind=kind).inc()

    def sse_block(self, block: bytes) -> None:
        """Count one SSE message (without its blank line) sent on a stream."""
        kind, data = _fields(block)
        if kind == _EVENT:
            created = _event_stamp(data)
            stamps = () if created is None else (created,)
            self.deliveries.add(1, len(block) + 2, stamps, time.time())
        elif kind is not None:
            self.error(_error_code(data) or kind.decode(errors="replace"))


class MetricsMiddleware:
    """ASGI middleware that measures what each response sends (the probes' and the
    scrapes' own answers aside: a 503 of `/readyz` is a state, told by `nats_connected`)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNMEASURED:
            await self.app(scope, receive, send)
            return
        meter = Meter(self.metrics)
        try:
            await self.app({**scope, METER: meter}, receive, meter.wrap(send))
        finally:
            meter.done()


class Meter:
    """What one response sends: its status, then its body, read as SSE or as an error,
    or counted by the response itself (`claim`)."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics
        self._deliveries = metrics.deliveries
        self._stream = False
        self._claimed = False
        self._status = 0
        self._buffer = b""
        self._error_body: bytes | None = None

    def claim(self) -> None:
        """The response counts the messages of its stream itself: `delivered` for its
        events, `scan` for anything else it sends after its first comment."""
        self._claimed = True

    def delivered(self, batch: Batch) -> None:
        """Count the events of `batch`, sent now."""
        self._deliveries.add(len(batch.seqs), len(batch.data), batch.stamps, time.time())

    def scan(self, messages: bytes) -> None:
        """Count the whole SSE messages in `messages` (not events: errors and gaps)."""
        for block in messages.split(b"\n\n")[:-1]:
            self._metrics.sse_block(block)

    def wrap(self, send: Send) -> Send:
        def measured(message: Message) -> Awaitable[None]:
            if not self._claimed or message["type"] != "http.response.body":
                self._see(message)
            return send(message)

        return measured

    def _see(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._status = int(message["status"])
            headers = dict(message.get("headers", []))
            content_type = headers.get(b"content-type", b"")
            if self._status == 200 and content_type.startswith(b"text/event-stream"):
                self._stream = True
                self._metrics.open_streams.inc()
            elif self._status >= 400:
                self._error_body = b""
        elif message["type"] == "http.response.body":
            body: bytes = message.get("body", b"")
            if self._stream:
                self._sse(body)
            elif self._error_body is not None and len(self._error_body) < _ERROR_BODY_LIMIT:
                self._error_body += body
                if not message.get("more_body", False):
                    self._count_error()

    def _sse(self, body: bytes) -> None:
        buffer = self._buffer + body
        *blocks, self._buffer = buffer.split(b"\n\n")
        for block in blocks:
            self._metrics.sse_block(block)

    def _count_error(self) -> None:
        assert self._error_body is not None
        code = _error_code(self._error_body)
        self._metrics.error(code or f"http_{self._status}")
        self._error_body = None

    def done(self) -> None:
        if self._stream:
            self._metrics.open_streams.dec()
            self._stream = False
        elif self._error_body is not None:
            self._count_error()  # Cut short before its end: counted all the same.


def _fields(block: bytes) -> tuple[bytes | None, bytes]:
    """The `event:` and `data:` of an SSE message (None for a comment)."""
    kind: bytes | None = None
    data = b""
    for line in block.split(b"\n"):
        if line.startswith(b"event:"):
            kind = line[6:].strip()
        elif line.startswith(b"data:"):
            data = line[5:].strip()
    return kind, data


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def _event_timestamp(data: bytes) -> float | None:
    """When the event's producer created it (Unix seconds)."""
    stamp = _event_stamp(data)
    return None if stamp is None else stamp / 1e9


def _event_stamp(data: bytes) -> int | None:
    """When the event's producer created it (Unix nanoseconds)."""
    # The envelope's first key of this name is its event's own: nothing before it in the
    # encoding is an object (`stream`, `timestamp`, then `data` opening with its ids), and
    # within a string a quote is escaped. Reading the digits costs far less than parsing.
    at = data.find(_TIMESTAMP_KEY)
    if at != -1:
        digits = _DIGITS.match(data, at + len(_TIMESTAMP_KEY))
        if digits is not None:
            return int(digits.group(1))
    envelope = _loads(data)
    event = envelope.get("data") if isinstance(envelope, dict) else None
    stamp = event.get("event_timestamp") if isinstance(event, dict) else None
    return stamp if isinstance(stamp, int) else None


def _error_code(data: bytes) -> str | None:
    body = _loads(data)
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) and code else None
