"""Many concurrent token streams on one worker: producer throughput and memory, then one
consumer rebuilding every task's state at once."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from temporalio import workflow

import mistral_workflows as workflows
from bench._common import (
    Row,
    Servers,
    StartLine,
    add_token,
    busy_worker,
    check_token_tasks,
    read_tasks,
    token,
)
from mistral_workflows.core.context import current_scope
from mistral_workflows.core.task import Task

TOKENS = 50  # per activity: a short LLM answer
TOKEN_INTERVAL = 0.02  # 50 tokens/s per stream, like a fast LLM
EVENTS_PER_TASK = TOKENS + 2  # STARTED, one IN_PROGRESS per token, COMPLETED
STREAM = "token-stream"

START_TIMEOUT = 120.0  # for every activity to be running, before the streams begin

_start: StartLine | None = None


@workflows.activity()
async def stream_answer(k: int) -> tuple[float, float]:
    """Stream TOKENS paced tokens; returns the times of the first event and of the moment
    every event of this activity was acknowledged."""
    assert _start is not None, "run through produce()"
    try:
        await _start.arrive()
        started = time.perf_counter()
        async with Task(type=STREAM, state={"tokens": [], "text": ""}) as task:
            for i in range(TOKENS):
                await asyncio.sleep(TOKEN_INTERVAL)
                await task.update_state(add_token(task.state, token(k, i)))
        # The activity's end waits for this anyway; done here, it can be timed.
        await current_scope().emitter.flush()
        return started, time.perf_counter()
    finally:
        _start.leave()


@workflow.defn
class ScaleBench:
    @workflow.run
    async def run(self, n: int) -> list[tuple[float, float]]:
        return list(
            await asyncio.gather(
                *(
                    workflow.execute_activity(
                        stream_answer, k, start_to_close_timeout=timedelta(minutes=10)
                    )
                    for k in range(n)
                )
            )
        )


def _status_kb(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    assert match is not None, f"no {field} in /proc/self/status"
    return int(match.group(1))


def _reset_peak_rss() -> None:
    """Make VmHWM start again from the current RSS (Linux 4.0+)."""
    Path("/proc/self/clear_refs").write_text("5")


@dataclass
class Produced:
    exec_id: str
    start_seconds: float
    """From starting the workflow until every activity was running."""
    seconds: float
    """From the first event to the last acknowledgement."""
    growth_mb: float
    """The worker's peak RSS over its idle RSS."""
    peak: int
    """Activities running at once."""


async def produce(servers: Servers, n: int) -> Produced:
    """Run n streaming activities at once on one worker."""
    global _start
    start = _start = StartLine(n, START_TIMEOUT)
    async with busy_worker(servers, "scale", [ScaleBench], [stream_answer], n) as (client, queue):
        # From a started, idle worker: what the streams themselves cost.
        baseline = _status_kb("VmRSS")
        _reset_peak_rss()
        begun = time.perf_counter()
        times = await client.execute_workflow(
            ScaleBench.run, n, id=f"scale-{queue}", task_queue=queue
        )
        growth_mb = (_status_kb("VmHWM") - baseline) / 1024
    first = min(t[0] for t in times)
    seconds = max(t[1] for t in times) - first
    return Produced(f"scale-{queue}", first - begun, seconds, growth_mb, start.peak)


async def consume(url: str, exec_id: str, n: int) -> tuple[float, int]:
    """Rebuild every task of the run with one subscription; returns the seconds it took
    and the events read. Raises if a task is missing or its state is not the final one."""
    started = time.perf_counter()
    states, count = await read_tasks(url, exec_id, STREAM, n)
    seconds = time.perf_counter() - started
    if count != n * EVENTS_PER_TASK:
        raise AssertionError(f"read {count} events, expected {n * EVENTS_PER_TASK}")
    check_token_tasks(states, n, TOKENS)
    return seconds, count


async def run(servers: Servers, n: int) -> list[Row]:
    p = await produce(servers, n)
    events = n * EVENTS_PER_TASK
    read_seconds, count = await consume(servers.nats_url, p.exec_id, n)
    lost = events - count
    paced = TOKENS * TOKEN_INTERVAL
    return [
        Row("scale", f"activities running at once (of {n})", p.peak, "", f"{n}", p.peak == n),
        Row("scale", f"time until all {n} activities ran (Temporal)", p.start_seconds, "s"),
        Row("scale", f"events/s, {n} streams, first event to last ack", events / p.seconds, "ev/s"),
        Row(
            "scale",
            f"stream time / {TOKENS} tokens paced at {TOKEN_INTERVAL * 1e3:g} ms",
            p.seconds / paced,
            "x",
        ),
        Row("scale", "worker peak RSS growth over idle worker", p.growth_mb, "MB"),
        Row("scale", "  per activity", p.growth_mb * 1024 / n, "KB"),
        Row("scale", f"one subscribe() rebuilding {n} tasks", read_seconds, "s"),
        Row("scale", "events/s consumed into TaskStates", count / read_seconds, "ev/s"),
        Row("scale", "events lost (all states rebuilt equal)", lost, "ev", "0", lost == 0),
    ]
