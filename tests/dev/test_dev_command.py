"""`mistral-workflows dev`: the standard ports when free, else free ones and the exact
`export` lines that make the other commands find the servers."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import nats
from temporalio.client import Client

from mistral_workflows.dev import free_port
from mistral_workflows.dev._serve import (
    NATS_PORT,
    TEMPORAL_PORT,
    TEMPORAL_UI_PORT,
    _port,
    port_is_free,
)
from tests.test_cli import cli, cli_env


@contextlib.contextmanager
def listening(port: int) -> Iterator[None]:
    """Something listens on 127.0.0.1:`port` for the block (unless something already does)."""
    with socket.socket() as sock:
        with contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port))
            sock.listen()
        yield


def dev_lines(proc: subprocess.Popen[str]) -> list[str]:
    """The lines `dev` prints, up to "Ctrl-C to stop"."""
    assert proc.stdout is not None
    lines = []
    while (line := proc.stdout.readline()) and not line.startswith("Ctrl-C"):
        lines.append(line.rstrip("\n"))
    assert line, f"dev ended early after {lines}"
    return lines


def test_a_free_standard_port_is_taken_a_busy_one_replaced():
    """The port chooser: the standard port when nothing listens there, else another free
    one; a port given explicitly is kept as it is."""
    port = free_port()
    assert port_is_free(port) and _port(None, port) == port
    with listening(port):
        assert not port_is_free(port)
        other = _port(None, port)
        assert other != port and port_is_free(other)
        assert _port(port, 4222) == port


async def test_busy_standard_ports_give_exports_that_the_commands_honour():
    """With 4222, 7233 and 8233 busy, `dev` serves on other ports and prints the `export`
    lines; with them pasted, `events` reaches that NATS (no flags) and the Temporal
    client and web UI answer at the printed addresses. SIGTERM stops it cleanly."""
    with (
        listening(NATS_PORT),
        listening(TEMPORAL_PORT),
        listening(TEMPORAL_UI_PORT),
        subprocess.Popen(  # noqa: ASYNC220 - a test may block while the command starts
            [sys.executable, "-m", "mistral_workflows", "dev"],
            stdout=subprocess.PIPE,
            text=True,
            env=cli_env(),
        ) as proc,
    ):
        try:
            lines = dev_lines(proc)
            printed = dict(line.split(None, 1) for line in lines[:2])
            ui = lines[2].removeprefix("Web UI").strip()
            exports = dict(
                line.split()[1].split("=", 1) for line in lines if line.startswith("  export ")
            )
            assert exports == {
                "NATS_URL": printed["NATS"],
                "TEMPORAL_ADDRESS": printed["Temporal"],
            }
            assert not printed["NATS"].endswith(f":{NATS_PORT}")
            assert not printed["Temporal"].endswith(f":{TEMPORAL_PORT}")
            assert not ui.endswith(f":{TEMPORAL_UI_PORT}")
            nc = await nats.connect(printed["NATS"])
            await nc.jetstream().account_info()
            await nc.close()
            await Client.connect(exports["TEMPORAL_ADDRESS"])
            # No worker ran there: `events` says so, naming the exported server.
            done = cli("events", env=exports)
            assert done.returncode == 1 and printed["NATS"] in done.stderr, done.stderr
            assert ui_answers(ui)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
    assert proc.returncode == 0


def ui_answers(url: str, attempts: int = 100) -> bool:
    """Whether the web UI serves a page (it may come up just after the gRPC port)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for _ in range(attempts):
        with contextlib.suppress(OSError), opener.open(url, timeout=2) as response:
            return bool(response.status == 200)
        time.sleep(0.1)
    return False
