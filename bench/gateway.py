"""Publish-to-SSE-client latency through the gateway, against `subscribe()` on the same
events in the same run: the gateway runs as its own process (`mistral-workflows gateway`)
and an HTTP client reads its stream as a browser would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import httpx2 as httpx
import nats
import orjson

from bench._common import Row, Servers, direct_emitter, percentile
from bench.latency import RATE, paced
from mistral_workflows import subscribe
from mistral_workflows.core.events import EventType
from mistral_workflows.core.task import Task
from mistral_workflows.dev import free_port
from mistral_workflows.worker import StreamSettings, provision

_TYPE = "gateway-latency"


@contextlib.contextmanager
def gateway_process(nats_url: str) -> Iterator[tuple[str, int]]:
    """A gateway process on a free loopback port: its URL and process id; stopped by its
    process id."""
    port = free_port()
    command = [sys.executable, "-m", "mistral_workflows", "gateway", "--nats-url", nats_url]
    command += ["--port", str(port)]
    env = {k: v for k, v in os.environ.items() if k != "MISTRAL_WORKFLOWS_GATEWAY_SECRET"}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, env=env, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, process)
            yield url, process.pid
        finally:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(15)


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    """Wait until the gateway at `url` answers /healthz (30 s at most)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("the gateway did not start")


@contextlib.contextmanager
def gateway(nats_url: str) -> Iterator[str]:
    """A gateway process on a free loopback port: its URL."""
    with gateway_process(nats_url) as (url, _):
        yield url


async def _through_gateway(url: str, exec_id: str, ready: asyncio.Event) -> list[float]:
    delays: list[float] = []
    params = {"workflow_exec_id": exec_id, "stream": _TYPE}
    async with (
        httpx.AsyncClient(timeout=60) as http,
        http.stream("GET", f"{url}/v1/workflows/events/stream", params=params) as response,
    ):
        ready.set()
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = orjson.loads(line[6:])["data"]
            delays.append(time.time_ns() - data["event_timestamp"])
            if data["event_type"] == EventType.CUSTOM_TASK_COMPLETED:
                return delays
    raise RuntimeError("the gateway stream ended early")


async def _direct(nats_url: str, exec_id: str) -> list[float]:
    delays: list[float] = []
    async for event in subscribe(nats_url, workflow_exec_id=exec_id, stream=_TYPE):
        delays.append(time.time_ns() - event.data.event_timestamp)
        if event.data.event_type == EventType.CUSTOM_TASK_COMPLETED:
            return delays
    raise RuntimeError("subscribe ended early")


async def measure(servers: Servers, n: int) -> tuple[list[float], list[float]]:
    """The delays (ns) of the same `n` paced updates, read through the gateway and directly."""
    exec_id = f"gateway-latency-{time.time_ns()}"
    nc = await nats.connect(servers.nats_url)
    await provision(nc.jetstream(), StreamSettings())  # Consumers must not wait for it.
    await nc.close()
    with gateway(servers.nats_url) as url:
        ready = asyncio.Event()
        via_gateway = asyncio.create_task(_through_gateway(url, exec_id, ready))
        direct = asyncio.create_task(_direct(servers.nats_url, exec_id))
        await asyncio.wait_for(ready.wait(), 30)
        await asyncio.sleep(0.5)  # Both consumers exist before the first update.
        async with (
            direct_emitter(servers.nats_url, exec_id),
            Task(type=_TYPE, state={"i": 0}) as task,
        ):

            async def send(i: int) -> None:
                await task.update_state({"i": i + 1})

            await paced(n, send)
        gateway_delays, direct_delays = await asyncio.wait_for(
            asyncio.gather(via_gateway, direct), 60
        )
    # Without the STARTED and COMPLETED events, as in bench/latency.py.
    return gateway_delays[1:-1], direct_delays[1:-1]


async def run(servers: Servers, n: int) -> list[Row]:
    through, direct = await measure(servers, n)
    mine = [d / 1e6 for d in through]
    base = [d / 1e6 for d in direct]
    p50, base50 = percentile(mine, 0.5), percentile(base, 0.5)
    extra = p50 - base50
    return [
        Row("gateway", f"SSE client via gateway p50 at {RATE} ev/s", p50, "ms"),
        Row("gateway", f"SSE client via gateway p99 at {RATE} ev/s", percentile(mine, 0.99), "ms"),
        Row("gateway", "subscribe() p50, same events", base50, "ms"),
        Row("gateway", "subscribe() p99, same events", percentile(base, 0.99), "ms"),
        Row("gateway", "p50 gateway - subscribe()", extra, "ms", "<= 2", extra <= 2),
    ]
