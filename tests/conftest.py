"""Fixtures shared by the whole test suite.

The servers are session-scoped and started on first use: a test that kills or restarts a
server must start its own instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from mistral_workflows.dev import NatsServer, TemporalServer

# --- servers ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A NATS server with JetStream, shared by the session."""
    with NatsServer(store_dir=tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture(scope="session")
def nats_url(nats_server: NatsServer) -> str:
    """The URL of the session's NATS server."""
    return nats_server.url


@pytest.fixture(scope="session")
def temporal_server() -> Iterator[TemporalServer]:
    """A Temporal dev server (in memory), shared by the session."""
    with TemporalServer() as server:
        yield server


@pytest.fixture(scope="session")
def temporal_address(temporal_server: TemporalServer) -> str:
    """The gRPC address of the session's Temporal server."""
    return temporal_server.address


# --- per-test names ----------------------------------------------------------------------


@pytest.fixture
def task_queue() -> str:
    """A task queue name no other test uses."""
    return f"test-{uuid.uuid4().hex}"
