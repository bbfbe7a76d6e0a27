"""Several gateway processes with nothing shared but NATS: two on one port (SO_REUSEPORT)
both serve a stream, and when one dies its clients resume on the other with nothing lost."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx
import pytest

from mistral_workflows.core.errors import ConfigurationError
from mistral_workflows.dev import free_port
from mistral_workflows.gateway import GatewaySettings, serve
from tests.gateway.gateway_support import gateway_process
from tests.gateway.page_support import publish
from tests.support import collect, unique

STREAM = "/v1/workflows/events/stream"
CLIENTS = 24  # All on one process by chance: 2 in 2^24 runs.


async def follow(
    url: str, params: dict[str, str], got: list[int], want: int, halfway: asyncio.Event
) -> int:
    """Read event ids into `got` until it holds `want` (`halfway` is set at half of it),
    reconnecting with Last-Event-ID whenever the connection breaks; return how many times
    it reconnected."""
    reconnects = -1
    while len(got) < want:
        reconnects += 1
        headers = {"Last-Event-ID": str(got[-1])} if got else {}
        try:
            async with (
                httpx.AsyncClient(timeout=30) as http,
                http.stream("GET", url, params=params, headers=headers) as response,
            ):
                async for line in response.aiter_lines():
                    if line.startswith("id: "):
                        got.append(int(line[4:]))
                        if len(got) == want // 2:
                            halfway.set()
                        if len(got) == want:
                            return reconnects
        except httpx.TransportError:
            continue
    return reconnects


async def test_two_processes_on_one_port_serve_the_same_stream(nats_url):
    """Two gateways started with --reuse-port on one port both take clients of one
    execution (killing one cuts some clients, not all); the cut clients resume on the other
    and every client gets every event once, in order."""
    exec_id, port = unique("scale"), free_port()
    with (
        gateway_process(nats_url, None, "--reuse-port", port=port) as first,
        gateway_process(nats_url, None, "--reuse-port", port=port),
    ):
        url, params = first.url + STREAM, {"workflow_exec_id": exec_id}
        got: list[list[int]] = [[] for _ in range(CLIENTS)]
        halfway = [asyncio.Event() for _ in got]
        clients = [
            asyncio.create_task(follow(url, params, g, 20, h))
            for g, h in zip(got, halfway, strict=True)
        ]
        await publish(nats_url, exec_id, 10)
        await asyncio.wait_for(asyncio.gather(*(h.wait() for h in halfway)), 60)
        os.kill(first.process.pid, signal.SIGKILL)
        await publish(nats_url, exec_id, 10)
        reconnects = await asyncio.wait_for(asyncio.gather(*clients), 60)
    stored = [e.broker_sequence for e in await collect(nats_url, workflow_exec_id=exec_id)]
    assert all(g == stored for g in got)
    cut = sum(1 for r in reconnects if r > 0)
    assert 0 < cut < CLIENTS, reconnects


def test_a_port_held_without_reuse_port_is_refused(nats_url):
    """Negative control: without --reuse-port a second gateway cannot share the port."""
    port = free_port()
    with gateway_process(nats_url, None, "--reuse-port", port=port):
        command = [sys.executable, "-m", "mistral_workflows", "gateway", "--nats-url", nats_url]
        second = subprocess.run(
            [*command, "--port", str(port)], capture_output=True, timeout=60, check=False
        )
    assert second.returncode != 0
    assert b"address already in use" in second.stderr.lower()


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


async def test_workers_share_the_port_and_stop_together(nats_url):
    """--workers 2 runs two processes serving the stream; stopping the command stops both."""
    exec_id = unique("workers")
    await publish(nats_url, exec_id, 6)
    with gateway_process(nats_url, None, "--workers", "2") as running:
        workers = _children(running.process.pid)
        assert len(workers) == 2
        got: list[int] = []
        params = {"workflow_exec_id": exec_id}
        await asyncio.wait_for(follow(running.url + STREAM, params, got, 6, asyncio.Event()), 30)
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(15) == 0
    assert _alive(workers) == []


def _alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def test_a_worker_that_dies_stops_the_command(nats_url):
    """When one of the --workers processes dies, the command stops the others and exits
    with an error naming it, for a supervisor to restart it."""
    with gateway_process(nats_url, None, "--workers", "2") as running:
        first, second = _children(running.process.pid)
        os.kill(first, signal.SIGKILL)
        assert running.process.wait(15) == 1
        assert _alive([second]) == []


def test_workers_below_one_are_refused():
    """--workers 0 is a configuration error said at once."""
    with pytest.raises(ConfigurationError, match="workers must be an integer >= 1"):
        serve(GatewaySettings(secret=None), workers=0)
