"""Local NATS (with JetStream) and Temporal dev servers, for tests, demos and `dev`."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from mistral_workflows.dev._process import ServerProcess, Started, find_binary, free_port

__all__ = ["EmbeddedServers", "NatsServer", "TemporalServer"]

_HOST = "127.0.0.1"
_PROBE_TIMEOUT_SECONDS = 0.5
_TEMPORAL_PROBE_TIMEOUT_SECONDS = 5.0
# A proxy from the environment (http_proxy...) must never see loopback health checks.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http_ok(url: str) -> bool:
    try:
        with _DIRECT.open(url, timeout=_PROBE_TIMEOUT_SECONDS) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError as error:
        error.close()
        return False
    except (OSError, http.client.HTTPException):
        return False


def _private_temp_path(prefix: str) -> Path:
    # Created on start, not now, so an object that never starts leaves nothing behind.
    return Path(tempfile.gettempdir()) / f"{prefix}{uuid.uuid4().hex}"


class NatsServer(ServerProcess):
    """A ``nats-server`` with JetStream, listening on 127.0.0.1 only, started and stopped
    by a with-block (or `start` and `stop`)::

        with NatsServer() as nats_server:
            connection = await nats.connect(nats_server.url)

    Args:
        port: Client port; a free one is picked if None.
        store_dir: JetStream storage directory, which also holds the server's log (and
            config file). A temporary directory, removed by `stop`, if None.
        max_payload: Largest message the server accepts, in bytes (server default: 1 MiB).
        config: Text of a nats-server configuration file, for settings without a flag.
        args: Extra command-line arguments for nats-server.
    """

    _label = "NATS server"

    def __init__(
        self,
        *,
        port: int | None = None,
        store_dir: str | Path | None = None,
        max_payload: int | None = None,
        config: str | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self._owns_store = store_dir is None
        if store_dir is None:
            store_dir = _private_temp_path("mistral-nats-")
        self._store_dir = Path(store_dir)
        super().__init__(port, self._store_dir / "nats-server.log")
        self._monitor_port = free_port()
        self._config = self._config_text(config, max_payload)
        self._args = list(args)

    @property
    def url(self) -> str:
        """The URL clients connect to, such as ``nats://127.0.0.1:4222``."""
        return f"nats://{_HOST}:{self._port}"

    @property
    def monitor_port(self) -> int:
        """The HTTP monitoring port (``/healthz``, ``/jsz``...)."""
        return self._monitor_port

    @property
    def store_dir(self) -> Path:
        """The JetStream storage directory."""
        return self._store_dir

    def monitor(self, endpoint: str) -> dict[str, Any] | None:
        """The JSON of a monitoring endpoint, such as ``jsz?streams=true`` or ``varz``.

        Returns:
            The parsed document; None if the server does not answer with JSON.
        """
        url = f"http://{_HOST}:{self._monitor_port}/{endpoint.lstrip('/')}"
        try:
            with _DIRECT.open(url, timeout=_PROBE_TIMEOUT_SECONDS) as response:
                data = json.load(response)
        except urllib.error.HTTPError as error:
            error.close()
            return None
        except (OSError, ValueError, http.client.HTTPException):
            return None
        return data if isinstance(data, dict) else None

    @staticmethod
    def _config_text(config: str | None, max_payload: int | None) -> str | None:
        # nats-server has no --max_payload flag: the setting only exists in a config file.
        parts = [config] if config else []
        if max_payload is not None:
            parts.append(f"max_payload: {max_payload}")
        return "\n".join(parts) + "\n" if parts else None

    def _prepare(self) -> None:
        self._store_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self._config is not None:
            (self._store_dir / "nats-server.conf").write_text(self._config)

    def _command(self) -> list[str]:
        command = [find_binary("nats-server"), "-js", "-a", _HOST, "-p", str(self._port)]
        command += ["-m", str(self._monitor_port), "-sd", str(self._store_dir)]
        if self._config is not None:
            command += ["-c", str(self._store_dir / "nats-server.conf")]
        return command + self._args

    def _is_ready(self) -> bool:
        return _http_ok(f"http://{_HOST}:{self._monitor_port}/healthz?js-enabled-only=true")

    def _cleanup(self) -> None:
        if self._owns_store:
            shutil.rmtree(self._store_dir, ignore_errors=True)


class TemporalServer(ServerProcess):
    """A Temporal dev server (``temporal server start-dev``) on 127.0.0.1, without its UI::

        with TemporalServer() as temporal_server:
            client = await Client.connect(temporal_server.address)

    Args:
        port: gRPC port; a free one is picked if None.
        db_filename: SQLite file that keeps workflows across restarts; in memory if None.
        namespace: Namespace to create at launch (``default`` always exists).
        ui_port: Serve Temporal's web UI on this port; no UI if None.
    """

    _label = "Temporal server"

    def __init__(
        self,
        *,
        port: int | None = None,
        db_filename: str | Path | None = None,
        namespace: str = "default",
        ui_port: int | None = None,
    ) -> None:
        self._run_dir = _private_temp_path("mistral-temporal-")
        # The log is removed with the run directory by `stop`.
        super().__init__(port, self._run_dir / "temporal.log")
        self._http_port = free_port()
        self._db_filename = Path(db_filename) if db_filename is not None else None
        self.namespace = namespace
        """The namespace created at launch."""
        self.ui_port = ui_port
        """The web UI's port, or None without a UI."""

    @property
    def address(self) -> str:
        """The gRPC address clients connect to, such as ``127.0.0.1:7233``."""
        return f"{_HOST}:{self._port}"

    @property
    def ui_url(self) -> str | None:
        """The web UI's address, such as ``http://127.0.0.1:8233``; None without a UI."""
        return None if self.ui_port is None else f"http://{_HOST}:{self.ui_port}"

    def _prepare(self) -> None:
        self._run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self._db_filename is not None:
            self._db_filename.parent.mkdir(parents=True, exist_ok=True)

    def _command(self) -> list[str]:
        command = [find_binary("temporal"), "server", "start-dev"]
        if self.ui_port is None:
            command.append("--headless")
        else:
            command += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
        command += ["--ip", _HOST, "--port", str(self._port), "--http-port", str(self._http_port)]
        command += ["--log-level", "error", "--namespace", self.namespace]
        if self._db_filename is not None:
            command += ["--db-filename", str(self._db_filename)]
        return command

    def _is_ready(self) -> bool:
        # Describing the namespace over gRPC proves both the port and the namespace are ready;
        # the config flags keep the user's Temporal profile (TLS, API key...) out of it.
        probe = [find_binary("temporal"), "operator", "namespace", "describe", "-o", "none"]
        probe += ["--address", self.address, "--namespace", self.namespace]
        probe += ["--disable-config-env", "--disable-config-file", "--command-timeout", "2s"]
        try:
            result = subprocess.run(
                probe,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=_TEMPORAL_PROBE_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0

    def _cleanup(self) -> None:
        shutil.rmtree(self._run_dir, ignore_errors=True)


class EmbeddedServers(Started):
    """A NATS server and a Temporal server, started side by side and stopped together.

    Example::

        with EmbeddedServers() as servers:
            print(servers.nats_url, servers.temporal_address)

    Args:
        data_dir: Directory that keeps both servers' data across runs (``nats/`` and
            ``temporal.db`` inside it); temporary data if None.
        nats_port: NATS client port; a free one is picked if None.
        temporal_port: Temporal gRPC port; a free one is picked if None.
        ui_port: Temporal web UI port; no UI if None.

    Attributes:
        nats: The NATS server.
        temporal: The Temporal server.
    """

    def __init__(
        self,
        *,
        data_dir: str | Path | None = None,
        nats_port: int | None = None,
        temporal_port: int | None = None,
        ui_port: int | None = None,
    ) -> None:
        root = Path(data_dir) if data_dir is not None else None
        self.nats = NatsServer(port=nats_port, store_dir=root and root / "nats")
        self.temporal = TemporalServer(
            port=temporal_port, db_filename=root and root / "temporal.db", ui_port=ui_port
        )

    @property
    def nats_url(self) -> str:
        """The NATS URL, such as ``nats://127.0.0.1:4222``."""
        return self.nats.url

    @property
    def temporal_address(self) -> str:
        """The Temporal gRPC address, such as ``127.0.0.1:7233``."""
        return self.temporal.address

    def start(self, timeout: float = 30) -> Self:
        """Start both servers in parallel and return them once both are ready, within
        `timeout` seconds.

        Raises:
            ConfigurationError: A server exited or was not ready in time (both are stopped).
        """
        deadline = time.monotonic() + timeout
        try:
            for server in (self.nats, self.temporal):
                server._launch()
            for server in (self.nats, self.temporal):
                server._await_ready(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop both servers; safe to call more than once."""
        self.temporal.stop()
        self.nats.stop()
