"""The local NATS cluster: start-up with a meta leader, lookups, shutdown and bad input."""

from __future__ import annotations

from pathlib import Path

import nats
import pytest

from mistral_workflows.consumer._reader import clustered
from mistral_workflows.core.errors import ConfigurationError
from mistral_workflows.dev import NatsCluster
from tests.dev.test_servers import is_alive


def stores_with_jetstream(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if (p / "jetstream").is_dir())


async def test_cluster_elects_a_meta_leader_and_holds_three_replicas(tmp_path: Path) -> None:
    """Three routed nodes with their own stores; a 3-replica stream has a leader at once."""
    with NatsCluster(store_dir=tmp_path) as cluster:
        assert len(set(cluster.urls)) == 3
        assert cluster.meta_leader() in {f"mistral-dev-n{i}" for i in (1, 2, 3)}
        connection = await nats.connect(cluster.urls)
        try:
            assert clustered(connection)  # messages may then blame a leader election
            js = connection.jetstream()
            await js.add_stream(name="R3", subjects=["r3.>"], num_replicas=3)
            await js.publish("r3.one", b"hello")
            info = await js.stream_info("R3")
        finally:
            await connection.close()
        assert info.cluster is not None and info.cluster.leader is not None
        assert cluster.server_name(cluster.node(info.cluster.leader)) == info.cluster.leader
    assert stores_with_jetstream(tmp_path) == ["n1", "n2", "n3"]


def test_stop_ends_every_node_and_removes_its_own_store() -> None:
    """stop() terminates every node by pid and removes a temporary store directory."""
    cluster = NatsCluster(size=2, name="pair").start()
    pids = [node.pid for node in cluster.nodes]
    cluster.stop()
    cluster.stop()
    assert all(pid is not None and not is_alive(pid) for pid in pids)
    assert not cluster.store_dir.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"size": 1}, "2 to 7 nodes"),
        ({"size": 8}, "2 to 7 nodes"),
        ({"size": "3"}, "2 to 7 nodes"),
        ({"name": "has space"}, "cluster name"),
        ({"name": ""}, "cluster name"),
    ],
)
def test_bad_settings_are_clear_errors(options: dict[str, object], message: str) -> None:
    """Invalid sizes and names raise at construction, before any process starts."""
    with pytest.raises(ConfigurationError, match=message):
        NatsCluster(**options)  # type: ignore[arg-type]


def test_unknown_node_name_lists_the_nodes() -> None:
    """Looking up a server name that is not in the cluster names the ones that are."""
    cluster = NatsCluster(name="trio")
    with pytest.raises(ConfigurationError, match="trio-n1, trio-n2, trio-n3"):
        cluster.node("elsewhere-n1")
