"""A JetStream cluster of local nats-server processes, routed to each other on loopback."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Self

from mistral_workflows.core.errors import ConfigurationError
from mistral_workflows.dev._process import Started, free_port
from mistral_workflows.dev._servers import _HOST, NatsServer, _private_temp_path

__all__ = ["NatsCluster"]

_POLL_INTERVAL_SECONDS = 0.05
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class NatsCluster(Started):
    """A JetStream cluster of ``size`` nats-server processes on 127.0.0.1.

    Each node has its own client, route and monitoring ports and its own store directory;
    every node routes to every other. `start` returns once the cluster has elected a
    JetStream meta leader that every node knows, so streams with several replicas can be
    created at once. Nodes are stopped (or killed) by their process id::

        with NatsCluster() as cluster:
            connection = await nats.connect(cluster.urls)

    Args:
        size: How many nodes, 2 to 7: 3 tolerate the loss of one, 5 of two.
        store_dir: Parent of the nodes' store directories (``n1/``, ``n2/``...); a
            temporary directory, removed by `stop`, if None.
        name: The cluster name; nodes are named ``<name>-n1``, ``<name>-n2``...
        config: Extra nats-server configuration for every node, for settings without a
            flag, e.g. ``"jetstream { sync_interval: always }"``.
    """

    def __init__(
        self,
        size: int = 3,
        *,
        store_dir: str | Path | None = None,
        name: str = "mistral-dev",
        config: str | None = None,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or not 2 <= size <= 7:
            raise ConfigurationError(f"a NATS cluster has 2 to 7 nodes (3 is usual), not {size!r}")
        if not name or not set(name) <= _NAME_CHARS or len(name) > 32:
            raise ConfigurationError(
                f"cluster name {name!r} is invalid: use 1-32 letters, digits, '_' or '-'"
            )
        self._name = name
        self._owns_store = store_dir is None
        self._store_dir = (
            Path(store_dir)
            if store_dir is not None
            else _private_temp_path("mistral-nats-cluster-")
        )
        route_ports = [free_port() for _ in range(size)]
        routes = ", ".join(f"nats-route://{_HOST}:{port}" for port in route_ports)
        self.nodes: list[NatsServer] = [
            NatsServer(
                store_dir=self._store_dir / f"n{i}",
                config=_node_config(f"{name}-n{i}", name, port, routes, config),
            )
            for i, port in enumerate(route_ports, start=1)
        ]

    @property
    def name(self) -> str:
        """The cluster name."""
        return self._name

    @property
    def urls(self) -> list[str]:
        """The client URLs of every node; nats-py takes the list as its server pool."""
        return [node.url for node in self.nodes]

    @property
    def store_dir(self) -> Path:
        """The directory that holds every node's store directory."""
        return self._store_dir

    def node(self, server_name: str) -> NatsServer:
        """The node with this server name, as JetStream reports it (e.g. a stream leader).

        Raises:
            ConfigurationError: no node has that name.
        """
        for i, node in enumerate(self.nodes, start=1):
            if server_name == f"{self._name}-n{i}":
                return node
        raise ConfigurationError(
            f"no node of cluster {self._name!r} is named {server_name!r}; the nodes are "
            + ", ".join(f"{self._name}-n{i}" for i in range(1, len(self.nodes) + 1))
        )

    def server_name(self, node: NatsServer) -> str:
        """The server name of one of this cluster's nodes."""
        return f"{self._name}-n{self.nodes.index(node) + 1}"

    def meta_leader(self) -> str | None:
        """The JetStream meta leader's server name, if every running node agrees on one."""
        leaders = {_meta_leader(node) for node in self.nodes if node.pid is not None}
        if len(leaders) != 1:
            return None
        (leader,) = leaders
        return leader

    def start(self, timeout: float = 30) -> Self:
        """Start every node and wait until the cluster has a JetStream meta leader.

        Args:
            timeout: Seconds to wait for the whole cluster.

        Returns:
            The cluster itself, for chaining.

        Raises:
            ConfigurationError: a node exited, or the cluster was not ready in time (every
                node is stopped; the message ends with a log).
        """
        deadline = time.monotonic() + timeout
        try:
            for node in self.nodes:
                node._launch()
            for node in self.nodes:
                node._await_ready(deadline)
            self.wait_for_meta_leader(max(deadline - time.monotonic(), 0.0))
        except BaseException:
            self.stop()
            raise
        return self

    def wait_for_meta_leader(self, timeout: float = 30) -> str:
        """Wait until every running node knows the same JetStream meta leader.

        Returns:
            The meta leader's server name.

        Raises:
            ConfigurationError: no leader within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while (leader := self.meta_leader()) is None:
            if time.monotonic() >= deadline:
                first = next((n for n in self.nodes if n.pid is not None), self.nodes[0])
                raise ConfigurationError(
                    first._with_log(
                        f"The NATS cluster {self._name!r} elected no JetStream meta leader in "
                        "time. Check the nodes' logs (routes, ports), or pass a longer timeout."
                    )
                )
            time.sleep(_POLL_INTERVAL_SECONDS)
        return leader

    def stop(self) -> None:
        """Stop every node by its pid and remove the temporary store; safe to call again."""
        for node in self.nodes:
            node.stop()
        if self._owns_store:
            shutil.rmtree(self._store_dir, ignore_errors=True)


def _node_config(server: str, cluster: str, port: int, routes: str, extra: str | None) -> str:
    # A route to itself is harmless: nats-server notices and drops it.
    lines = [
        f"server_name: {server}",
        f"cluster {{\n  name: {cluster}\n  listen: {_HOST}:{port}\n  routes: [{routes}]\n}}",
    ]
    return "\n".join([*lines, extra] if extra else lines)


def _meta_leader(node: NatsServer) -> str | None:
    info = node.monitor("jsz")
    meta: Any = info and info.get("meta_cluster")
    leader = meta.get("leader") if isinstance(meta, dict) else None
    return leader if isinstance(leader, str) and leader else None
