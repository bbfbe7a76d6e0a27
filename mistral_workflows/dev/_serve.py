"""`serve`: run the embedded servers in the foreground, behind `mistral-workflows dev`."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

from mistral_workflows.core.errors import MistralWorkflowsError
from mistral_workflows.dev._servers import EmbeddedServers

__all__ = ["serve"]

_LIVENESS_INTERVAL_SECONDS = 0.5


def serve(
    *,
    data_dir: str | None = None,
    nats_port: int | None = None,
    temporal_port: int | None = None,
) -> None:
    """Run a NATS and a Temporal server until Ctrl-C or SIGTERM, then stop both.

    Prints one line per server with its address, then a hint line.

    Args:
        data_dir: Directory that keeps the servers' data across runs; temporary data if None.
        nats_port: NATS client port; a free one is picked if None.
        temporal_port: Temporal gRPC port; a free one is picked if None.

    Raises:
        ConfigurationError: A server could not start.
        MistralWorkflowsError: A server stopped on its own while serving.
    """
    servers = EmbeddedServers(data_dir=data_dir, nats_port=nats_port, temporal_port=temporal_port)
    with contextlib.suppress(KeyboardInterrupt), _sigterm_as_interrupt(), servers:
        print(f"NATS      {servers.nats_url}")
        print(f"Temporal  {servers.temporal_address}")
        print("Ctrl-C to stop", flush=True)
        _wait_while_running(servers)


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
