"""The embedded NATS and Temporal servers: start-up, shutdown, restarts and errors."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient
from temporalio.client import Client

from mistral_workflows.core.errors import ConfigurationError
from mistral_workflows.dev import (
    EmbeddedServers,
    NatsServer,
    TemporalServer,
    find_binary,
    free_port,
)


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[NatsClient]:
    connection = await nats.connect(url)
    try:
        yield connection
    finally:
        await connection.close()


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # An orphan whose reaper never calls wait() lingers as a zombie: dead all the same.
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def wait_until_dead(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not is_alive(pid)


def accepts_connections(address: str) -> bool:
    host, port = address.removeprefix("nats://").rsplit(":", 1)
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) == 0


# --- NATS ------------------------------------------------------------------------------


async def test_nats_starts_on_a_loopback_port_with_jetstream(nats_server: NatsServer) -> None:
    """The session server listens on 127.0.0.1 and has JetStream enabled."""
    assert nats_server.url == f"nats://127.0.0.1:{nats_server.port}"
    async with connected(nats_server.url) as connection:
        await connection.jetstream().account_info()


async def test_nats_max_payload_is_applied(tmp_path: Path) -> None:
    """max_payload reaches the server, which nats-server only accepts in a config file."""
    with NatsServer(store_dir=tmp_path, max_payload=2 * 1024 * 1024) as server:
        async with connected(server.url) as connection:
            assert connection.max_payload == 2 * 1024 * 1024


def test_stop_ends_the_process(tmp_path: Path) -> None:
    """stop() terminates the server process."""
    server = NatsServer(store_dir=tmp_path).start()
    pid = server.pid
    assert pid is not None
    server.stop()
    assert server.pid is None
    assert not is_alive(pid)


def test_stop_is_idempotent(tmp_path: Path) -> None:
    """stop() may be called again, and on a server that never started."""
    NatsServer().stop()
    server = NatsServer(store_dir=tmp_path).start()
    server.stop()
    server.stop()
    assert server.pid is None


def test_stop_removes_only_a_store_dir_it_created(tmp_path: Path) -> None:
    """The default temporary store dir goes away on stop(); a given one stays."""
    with NatsServer() as own, NatsServer(store_dir=tmp_path / "given") as given:
        assert own.store_dir.is_dir()
    assert not own.store_dir.exists()
    assert given.store_dir.is_dir()


async def test_restart_keeps_the_store_dir() -> None:
    """A message stored before a crash is still there after restart()."""
    with NatsServer() as server:
        async with connected(server.url) as connection:
            jetstream = connection.jetstream()
            await jetstream.add_stream(name="KEEP", subjects=["keep.>"])
            await jetstream.publish("keep.one", b"hello")
        server.kill()
        server.restart()
        async with connected(server.url) as connection:
            message = await connection.jetstream().get_msg("KEEP", 1)
    assert message.data == b"hello"


def test_start_failure_shows_the_server_log(nats_server: NatsServer, tmp_path: Path) -> None:
    """A server that cannot start raises an error that quotes its log."""
    clash = NatsServer(port=nats_server.port, store_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="address already in use"):
        clash.start()
    assert clash.pid is None


def test_missing_binary_says_how_to_install() -> None:
    """A missing executable names the dev extra to install."""
    with pytest.raises(ConfigurationError, match=r"pip install 'mistral-workflows\[dev\]'"):
        find_binary("no-such-server-binary")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_servers_die_with_their_python_parent(tmp_path: Path) -> None:
    """A server does not outlive a Python process that is SIGKILLed."""
    script = (
        "import sys, time\n"
        "from mistral_workflows.dev import NatsServer\n"
        "print(NatsServer(store_dir=sys.argv[1]).start().pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        server_pid = int(parent.stdout.readline())
        parent.kill()
    assert wait_until_dead(server_pid)


# --- Temporal --------------------------------------------------------------------------


async def test_temporal_server_answers(temporal_server: TemporalServer) -> None:
    """The session Temporal server is healthy on its loopback address."""
    assert temporal_server.address == f"127.0.0.1:{temporal_server.port}"
    client = await Client.connect(temporal_server.address)
    assert await client.service_client.check_health()


# --- both ------------------------------------------------------------------------------


async def test_embedded_servers_start_both(tmp_path: Path) -> None:
    """EmbeddedServers runs a NATS and a Temporal server, and keeps their data in data_dir."""
    with EmbeddedServers(data_dir=tmp_path) as servers:
        async with connected(servers.nats_url) as connection:
            await connection.jetstream().account_info()
        client = await Client.connect(servers.temporal_address)
        assert await client.service_client.check_health()
    assert (tmp_path / "nats" / "jetstream").is_dir()
    assert (tmp_path / "temporal.db").is_file()


def test_serve_prints_addresses_and_stops_both_on_sigterm() -> None:
    """serve() prints where the servers listen, and SIGTERM stops them and exits cleanly."""
    ports = [free_port() for _ in range(3)]
    script = "from mistral_workflows.dev import serve; serve(nats_port={}, temporal_port={}, "
    script += "ui_port={})"
    with subprocess.Popen(
        [sys.executable, "-c", script.format(*ports)], stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        lines = []
        while (line := process.stdout.readline()) and not line.startswith("Ctrl-C"):
            lines.append(line.split())
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    assert line == "Ctrl-C to stop\n"
    (nats_label, nats_url), (temporal_label, temporal_address) = lines[:2]
    assert (nats_label, temporal_label, lines[2][:2]) == ("NATS", "Temporal", ["Web", "UI"])
    assert nats_url.endswith(f":{ports[0]}") and temporal_address.endswith(f":{ports[1]}")
    assert not accepts_connections(nats_url)
    assert not accepts_connections(temporal_address)
    assert not accepts_connections(f"127.0.0.1:{ports[2]}")


def test_a_binary_on_path_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server installed without its wheel (a platform without a build) is found on PATH."""
    binary = tmp_path / "mistral-test-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_binary("mistral-test-server") == str(binary)


def test_a_missing_server_names_where_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the wheel and off PATH, `temporal` is an error naming the extra, the
    platform without a build, and where to download it."""
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr("sysconfig.get_path", lambda name: str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigurationError) as raised:
        find_binary("temporal")
    message = str(raised.value)
    assert "mistral-workflows[dev]" in message and "Windows" in message
    assert "https://docs.temporal.io/cli" in message and "PATH" in message
