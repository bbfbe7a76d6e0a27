"""Publisher memory against a paused server: a producer keeps updating a task while its
nats-server is stopped (SIGSTOP); the in-flight window must block it, so that memory stays
bounded, and every event must be stored once the server runs again (SIGCONT)."""

from __future__ import annotations

import asyncio
import os
import signal
import tracemalloc
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nats
import orjson

from bench._common import Row, Servers, direct_emitter
from mistral_workflows.core import subjects
from mistral_workflows.core.emitter import Emitter
from mistral_workflows.core.filter import EventFilter
from mistral_workflows.core.task import Task
from mistral_workflows.dev import NatsServer

# Characters of state replaced by each update: large-ish events (about 2.9 KB), and
# events small enough (about 1.1 KB) that the window fills before the socket's buffers do.
BLOBS = (2048, 200)
STREAM = "memory"
MB = 1024 * 1024


def _rss_kb(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field_name} in /proc/self/status")


def _reset_peak_rss() -> None:
    """Make VmHWM start again from the current RSS (Linux 4.0+)."""
    Path("/proc/self/clear_refs").write_text("5")


@dataclass
class Pause:
    """What happened while the server was stopped."""

    at: int = 0
    """Events sent when the server stopped."""
    accepted: int = 0
    """Events the producer got past `update_state` during the pause."""
    tail: int = 0
    """Of those, in the pause's last third: 0 when the producer is blocked."""
    in_flight: int = 0
    """Unacknowledged publishes at the end of the pause."""
    traced_peak: int = 0
    """Peak of the memory allocated during the pause and still held (tracemalloc)."""
    rss_growth_kb: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Producer:
    """Updates a task n times, stopping the server (by pid) after `pause_at` updates."""

    def __init__(self, pid: int, emitter: Emitter, n: int, blob: int, pause: float) -> None:
        self.pid, self.emitter, self.n, self.blob = pid, emitter, n, blob
        self.pause_at, self.seconds = max(1, n // 10), pause
        self.sent = 0
        self.pause = Pause()
        self._stopper: asyncio.Task[None] | None = None

    async def run(self) -> None:
        async with Task(type=STREAM, state={"i": -1, "blob": ""}) as task:
            for i in range(self.n):
                if i == self.pause_at:
                    self._stopper = asyncio.create_task(self._stop_server())
                    await asyncio.sleep(0)  # let it stop the server before the next event
                await task.update_state({"i": i, "blob": f"{i:08d}".ljust(self.blob, "x")})
                self.sent += 1
                # A producer awaits its source between updates (an LLM, a socket): one
                # event per update, where updates made within one loop turn would fold.
                await asyncio.sleep(0)
        if not self.pause.done.is_set():
            await self.pause.done.wait()  # the pause must end before the last flush

    async def _stop_server(self) -> None:
        pause, tracing = self.pause, tracemalloc.is_tracing()
        if not tracing:
            tracemalloc.start()  # from now on: only what the pause adds is traced
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        rss = _rss_kb("VmRSS")
        _reset_peak_rss()
        pause.at = self.sent
        os.kill(self.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(self.seconds * 2 / 3)
            before_tail = self.sent
            await asyncio.sleep(self.seconds / 3)
            pause.accepted = self.sent - pause.at
            pause.tail = self.sent - before_tail
            pause.in_flight = self.emitter.publisher.in_flight()
            pause.traced_peak = tracemalloc.get_traced_memory()[1] - before
            pause.rss_growth_kb = _rss_kb("VmHWM") - rss
        finally:
            os.kill(self.pid, signal.SIGCONT)
            if not tracing:
                tracemalloc.stop()
            pause.done.set()


@dataclass
class Stored:
    count: int
    """Events of the execution in the stream."""
    numbered: int
    """Events the task numbered (its last event's task_sequence + 1)."""
    size: int
    """The size of an update event as stored, in bytes."""


async def stored(url: str, exec_id: str) -> Stored:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        subject = EventFilter(workflow_exec_id=exec_id, stream=STREAM).subject(
            subjects.DEFAULT_PREFIX
        )
        info = await js.stream_info(subjects.DEFAULT_STREAM_NAME, subjects_filter=subject)
        last = await js.get_last_msg(subjects.DEFAULT_STREAM_NAME, subject)
        update = await js.get_msg(subjects.DEFAULT_STREAM_NAME, last.seq - 1)
        numbered = orjson.loads(last.data or b"")["data"]["attributes"]["task_sequence"] + 1
        count = sum((info.state.subjects or {}).values())
        return Stored(count, numbered, len(update.data or b"") + len(update.header or b""))
    finally:
        await nc.close()


async def run(servers: Servers, n: int) -> list[Row]:
    # A server of our own: stopping the shared one would stall the other benchmarks.
    server = NatsServer()
    await asyncio.to_thread(server.start)
    pause = 3.0 if n >= 5000 else 1.0
    try:
        rows: list[Row] = []
        for blob in BLOBS:
            rows += await scenario(server, n, blob, pause)
        return rows
    finally:
        await asyncio.to_thread(server.stop)


async def scenario(server: NatsServer, n: int, blob: int, pause: float) -> list[Row]:
    pid = server.pid
    assert pid is not None
    exec_id = f"memory-{uuid.uuid4().hex[:8]}"
    async with direct_emitter(server.url, exec_id) as emitter:
        producer = Producer(pid, emitter, n, blob, pause)
        await producer.run()
    window = emitter.publisher.max_in_flight
    return rows(producer.pause, n, window, await stored(server.url, exec_id), pause)


def rows(p: Pause, n: int, window: int, result: Stored, pause: float) -> list[Row]:
    count, sent, size = result.count, result.numbered, result.size
    bound = window * size
    growth = p.traced_peak
    kb = f"{size / 1000:.2g} KB"
    return [
        Row(
            "memory",
            f"{kb} events accepted in a {pause:g} s pause, of {n - p.at} ready",
            p.accepted,
            "ev",
        ),
        Row(
            "memory",
            "  in the pause's last third (0: producer blocked)",
            p.tail,
            "ev",
            "0",
            p.tail == 0,
        ),
        Row(
            "memory",
            "  unacknowledged at the end of the pause",
            p.in_flight,
            "ev",
            f"<= {window}",
            p.in_flight <= window,
        ),
        Row("memory", f"  bound: window x event size ({window} x {size} B)", bound / MB, "MB"),
        Row(
            "memory",
            "  memory growth in the pause (tracemalloc peak)",
            growth / MB,
            "MB",
            f"<= {2 * bound / MB:.3g}",
            growth <= 2 * bound,
        ),
        Row("memory", "  RSS growth in the pause", p.rss_growth_kb / 1024, "MB"),
        Row(
            "memory",
            f"  events stored, of {sent} sent ({n} updates)",
            count,
            "ev",
            f"{sent}",
            count == sent,
        ),
    ]
