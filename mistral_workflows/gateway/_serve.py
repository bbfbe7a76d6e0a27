"""`mistral-workflows gateway`: serve the app with uvicorn, refusing unsafe set-ups; one
process, or several sharing the port."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
from multiprocessing.connection import wait
from types import FrameType

from mistral_workflows.core.errors import ConfigurationError, MistralWorkflowsError
from mistral_workflows.core.logfields import configure_logging
from mistral_workflows.gateway._access import is_loopback
from mistral_workflows.gateway._app import GatewaySettings, create_app

__all__ = ["serve"]

_GRACE = 3


def serve(
    settings: GatewaySettings,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    reuse_port: bool = False,
    log_format: str = "text",
) -> None:
    """Run the gateway until interrupted, logging to stderr as text or JSON lines
    (`log_format`), each line with the ids of the request it concerns.

    With `reuse_port`, the port is opened with `SO_REUSEPORT`, so that other gateway
    processes started the same way listen on it too and the kernel spreads connections
    among them. `workers` above 1 starts that many such processes and stops them all
    when interrupted, or when one of them ends.

    Raises:
        ConfigurationError: no secret is set and `host` is not a loopback address, or
            `workers` is below 1.
        MistralWorkflowsError: a worker process ended by itself.
    """
    # The app refuses other machines' connections in development mode by itself; binding
    # elsewhere would only serve refusals, so it is a mistake said at once.
    if settings.secret is None and not is_loopback(host):
        raise ConfigurationError(
            f"without a token secret the gateway lets anyone read every event, so it only "
            f"binds to loopback, not {host!r}; set --secret-file or the "
            "MISTRAL_WORKFLOWS_GATEWAY_SECRET variable to require tokens"
        )
    if type(workers) is not int or workers < 1:
        raise ConfigurationError(f"workers must be an integer >= 1, not {workers!r}")
    configure_logging(log_format)
    if workers == 1:
        _run(settings, host, port, reuse_port)
        return
    _listening_socket(host, port).close()  # A port in use is said once, before any worker.
    _supervise(
        [
            multiprocessing.get_context("fork").Process(
                target=_run, args=(settings, host, port, True), name=f"gateway-{i}"
            )
            for i in range(workers)
        ]
    )


def _run(settings: GatewaySettings, host: str, port: int, reuse_port: bool) -> None:
    import uvicorn

    # No access log: browsers pass their token in the URL. Event streams never end by
    # themselves: on shutdown they are cut after a few seconds, and browsers reconnect.
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        access_log=False,
        log_level="info",
        log_config=None,
        timeout_graceful_shutdown=_GRACE,
    )
    server = uvicorn.Server(config)
    server.run(sockets=[_listening_socket(host, port)] if reuse_port else None)
    if not server.started:
        raise SystemExit(3)  # What uvicorn.run does: the reason is in the log.


def _listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` that other processes may bind too (SO_REUSEPORT)."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigurationError("this system has no SO_REUSEPORT: run one process per port")
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise ConfigurationError(
            f"cannot listen on {host}:{port} ({e.strerror}); another program holds the port "
            "without SO_REUSEPORT, or as another user"
        ) from None
    return sock


def _supervise(processes: list[multiprocessing.process.BaseProcess]) -> None:
    """Run the workers; stop them all on SIGTERM or SIGINT, or once one of them ends."""
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        _terminate(processes)

    for process in processes:
        process.start()
    # Only now: forked workers must not inherit this handler (uvicorn installs its own).
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ended = wait([p.sentinel for p in processes])
    if not stopping:
        _terminate(processes)
    for process in processes:
        process.join()
    if not stopping:
        codes = [p.exitcode for p in processes if p.sentinel in ended]
        raise MistralWorkflowsError(
            f"a gateway worker ended by itself (exit code {codes[0]}); the others were stopped"
        )


def _terminate(processes: list[multiprocessing.process.BaseProcess]) -> None:
    for process in processes:
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
