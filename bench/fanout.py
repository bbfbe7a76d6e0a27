"""Many viewers of one execution through the gateway: delivery delay against the number of
viewers, gateway CPU per delivered event and memory per viewer. The gateway runs as its
own process (`mistral-workflows gateway`), the viewers in another (`bench.fanout_viewers`),
and one task streams its updates at a paced 100 per second."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import nats

from bench._common import Row, Servers, direct_emitter
from bench.gateway import gateway_process
from mistral_workflows import subscribe
from mistral_workflows.core import subjects
from mistral_workflows.core.task import Task
from mistral_workflows.worker import StreamSettings, provision

RATE = 100
_TYPE = "fanout"
_TICK = os.sysconf("SC_CLK_TCK")
_ROOT = Path(__file__).resolve().parent.parent


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def _consumers_of(nats_url: str, exec_id: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        infos = await nc.jetstream().consumers_info(subjects.DEFAULT_STREAM_NAME)
    finally:
        await nc.close()
    token = f".{subjects.token(exec_id)}."
    return sum(token in (i.config.filter_subject or "") for i in infos)


async def _stream(nats_url: str, exec_id: str, n: int) -> None:
    """A task's STARTED, `n` updates paced at RATE per second, and COMPLETED."""
    async with direct_emitter(nats_url, exec_id), Task(type=_TYPE, state={"i": 0}) as task:
        start = time.perf_counter()
        for i in range(n):
            delay = start + i / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await task.update_state({"i": i + 1})


async def measure(servers: Servers, viewers: int, n: int) -> dict[str, Any]:
    """One gateway, `viewers` viewers in another process, `n` paced updates."""
    exec_id = f"fanout-{viewers}-{time.time_ns()}"
    query = urlencode({"workflow_exec_id": exec_id, "stream": _TYPE})
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    nc = await nats.connect(servers.nats_url)
    await provision(nc.jetstream(), StreamSettings())  # Viewers must not wait for it.
    await nc.close()
    with gateway_process(servers.nats_url) as (url, pid):
        idle_rss = _rss_bytes(pid)
        command = [sys.executable, "-m", "bench.fanout_viewers", url, query, str(viewers)]
        child = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, env=env
        )
        assert child.stdout is not None
        try:
            ready = await asyncio.wait_for(child.stdout.readline(), 300)
            if ready.strip() != b"ready":
                raise RuntimeError(f"the viewers did not start: {ready!r}")
            await asyncio.sleep(1 + viewers / 250)  # Their lone catch-up reads are over.
            rss = _rss_bytes(pid)
            cpu = _cpu_seconds(pid)
            await _stream(servers.nats_url, exec_id, n)
            done = await asyncio.wait_for(child.stdout.readline(), 300)
            # Before the viewers disconnect: what they cost to leave is not delivery.
            cpu = _cpu_seconds(pid) - cpu
            if done.strip() != b"done":
                raise RuntimeError(f"the viewers did not finish: {done!r}")
            line = await asyncio.wait_for(child.stdout.readline(), 300)
        finally:
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
            await child.wait()
        result = json.loads(line)
        for _ in range(100):  # The last viewer out deletes the shared consumer.
            result["left"] = await _consumers_of(servers.nats_url, exec_id)
            if not result["left"]:
                break
            await asyncio.sleep(0.1)
    stored = [
        e.broker_sequence
        async for e in subscribe(
            servers.nats_url, workflow_exec_id=exec_id, stream=_TYPE, until_caught_up=True
        )
    ]
    result["every"] = result.pop("ids") == stored and not result["disordered"]
    result["cpu_us"] = cpu / (viewers * len(stored)) * 1e6
    result["kb_per_viewer"] = (rss - idle_rss) / viewers / 1024
    return result


async def run(servers: Servers, n: int, counts: tuple[int, ...] = (1, 100, 1000)) -> list[Row]:
    rows: list[Row] = []
    for viewers in counts:
        r = await measure(servers, viewers, n)
        every = bool(r["every"])
        label = f"{viewers} viewer{'s' if viewers > 1 else ''}"
        rows += [
            Row("fanout", f"{label}: delay p50 at {RATE} ev/s", r["p50"], "ms"),
            Row("fanout", f"{label}: delay p99", r["p99"], "ms", "<= 100", r["p99"] <= 100),
            Row("fanout", f"  {label}: delay max", r["max"], "ms"),
            Row("fanout", f"  {label}: gateway CPU per delivered event", r["cpu_us"], "us"),
            Row("fanout", f"  {label}: gateway memory per viewer", r["kb_per_viewer"], "KB"),
            Row(
                "fanout",
                f"  {label}: viewers with every event once, in order",
                viewers if every else 0,
                "",
                str(viewers),
                every,
            ),
            Row(
                "fanout",
                f"  {label}: consumers left after they left",
                r["left"],
                "",
                "0",
                not r["left"],
            ),
        ]
    big = counts[-1]
    cpu = next(
        row.value
        for row in rows
        if row.figure == f"  {big} viewers: gateway CPU per delivered event"
    )
    rows.append(
        Row(
            "fanout",
            f"CPU per delivered event, {big} viewers (was ~300 us)",
            cpu,
            "us",
            "<= 30",
            cpu <= 30,
        )
    )
    return rows
