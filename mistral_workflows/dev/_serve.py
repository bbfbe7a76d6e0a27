"""`serve`: run the embedded servers in the foreground, behind `mistral-workflows dev`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from types import FrameType

from mistral_workflows.core.errors import MistralWorkflowsError
from mistral_workflows.dev._process import free_port
from mistral_workflows.dev._servers import EmbeddedServers

__all__ = [
    "NATS_PORT",
    "NATS_URL",
    "TEMPORAL_ADDRESS",
    "TEMPORAL_PORT",
    "TEMPORAL_UI_PORT",
    "port_is_free",
    "serve",
]

# The ports every NATS and Temporal tool assumes when told nothing else.
NATS_PORT = 4222
TEMPORAL_PORT = 7233
TEMPORAL_UI_PORT = 8233
# The variables that tell tools where the servers are (nats CLI, temporal CLI and ours).
NATS_URL = "NATS_URL"
TEMPORAL_ADDRESS = "TEMPORAL_ADDRESS"

_LIVENESS_INTERVAL_SECONDS = 0.5


def serve(
    *,
    data_dir: str | None = None,
    nats_port: int | None = None,
    temporal_port: int | None = None,
    ui_port: int | None = None,
) -> None:
    """Run a NATS and a Temporal server (with its web UI) until Ctrl-C or SIGTERM, then
    stop both.

    A port that is not given is the standard one (NATS 4222, Temporal 7233, web UI 8233)
    when it is free, so that every other tool finds the servers without settings; else a
    free one, and the ``export NATS_URL=...`` / ``export TEMPORAL_ADDRESS=...`` lines to
    paste into the shells that run the other commands are printed.

    Prints one line per server with its address, then what to do, then "Ctrl-C to stop".

    Args:
        data_dir: Directory that keeps the servers' data across runs; temporary data if None.
        nats_port: NATS client port; 4222 if free, else a free one, if None.
        temporal_port: Temporal gRPC port; 7233 if free, else a free one, if None.
        ui_port: Temporal web UI port; 8233 if free, else a free one, if None.

    Raises:
        ConfigurationError: A server could not start.
        MistralWorkflowsError: A server stopped on its own while serving.
    """
    chosen = [
        _port(given, standard)
        for given, standard in (
            (nats_port, NATS_PORT),
            (temporal_port, TEMPORAL_PORT),
            (ui_port, TEMPORAL_UI_PORT),
        )
    ]
    servers = EmbeddedServers(
        data_dir=data_dir, nats_port=chosen[0], temporal_port=chosen[1], ui_port=chosen[2]
    )
    with contextlib.suppress(KeyboardInterrupt), _sigterm_as_interrupt(), servers:
        print(f"NATS      {servers.nats_url}")
        print(f"Temporal  {servers.temporal_address}")
        print(f"Web UI    {servers.temporal.ui_url}")
        for line in _advice(servers, nats_port, temporal_port):
            print(line)
        print("Ctrl-C to stop", flush=True)
        _wait_while_running(servers)


def _port(given: int | None, standard: int) -> int:
    """`given` if set, else `standard` if nothing listens there, else a free port."""
    if given is not None:
        return given
    return standard if port_is_free(standard) else free_port()


def port_is_free(port: int) -> bool:
    """Whether a server could listen on `port` of 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _advice(
    servers: EmbeddedServers, nats_port: int | None, temporal_port: int | None
) -> list[str]:
    """What the user does next so that the other commands find these servers."""
    exports = {
        NATS_URL: servers.nats_url,
        TEMPORAL_ADDRESS: servers.temporal_address,
    }
    standard = servers.nats.port == NATS_PORT and servers.temporal.port == TEMPORAL_PORT
    mismatched = [name for name, value in exports.items() if os.environ.get(name, value) != value]
    if standard and not mismatched:
        return [
            "Standard ports: `mistral-workflows events`, `tail`, `gateway` and the "
            "`temporal` CLI find these servers without settings."
        ]
    lines = []
    if not standard:
        taken = [
            f"{wanted}"
            for wanted, got, asked in (
                (NATS_PORT, servers.nats.port, nats_port),
                (TEMPORAL_PORT, servers.temporal.port, temporal_port),
            )
            if got != wanted and asked is None
        ]
        why = f"port {' and '.join(taken)} in use" if taken else "ports given"
        lines.append(
            f"Not the standard ports ({why}): paste these lines into each shell that runs "
            "other commands (mistral-workflows events/tail/gateway, the examples, `temporal`):"
        )
    else:
        lines.append(
            f"{' and '.join(mismatched)} in this shell point(s) elsewhere: to reach these "
            "servers, paste:"
        )
    lines += [f"  export {name}={value}" for name, value in exports.items()]
    return lines


def _wait_while_running(servers: EmbeddedServers) -> None:
    while True:
        for server in (servers.nats, servers.temporal):
            if server.pid is None:
                raise MistralWorkflowsError(
                    server._with_log(f"The {server._label} stopped on its own; see its log.")
                )
        time.sleep(_LIVENESS_INTERVAL_SECONDS)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    # Signal handlers can only be installed from the main thread; elsewhere SIGTERM keeps
    # its default action, and the servers die with the process thanks to PDEATHSIG.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
