"""Clients that stop reading: their disconnect ends the gateway's reading at once, and what
the gateway reads ahead of them is bounded in bytes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mistral_workflows.dev import NatsServer
from tests.gateway.gateway_support import Gateway, gateway_process
from tests.gateway.stalled_support import (
    consumers,
    gateway_subscriptions,
    publish_backlog,
    reset,
    stalled_client,
    unread,
    until,
)
from tests.support import unique

CLIENTS = 20
# Far below the 60 s after which JetStream drops a consumer nobody pulls from by itself.
PROMPTLY = 10


@pytest.fixture(scope="module")
def own_gateway(nats_url: str) -> Iterator[Gateway]:
    """A gateway of this module's own: what it holds is what these tests left in it."""
    with gateway_process(nats_url, None) as running:
        yield running


async def test_reset_of_stalled_clients_deletes_their_consumers(
    own_gateway: Gateway, nats_server: NatsServer
) -> None:
    """Clients that stop reading a busy stream, then reset their connection, leave no
    consumer and no reader behind: both counts are back at their start within seconds."""
    workflow_id = unique("gw-stalled")
    await publish_backlog(nats_server.url, workflow_id, 2000, 4096)
    start = consumers(nats_server)
    clients = [stalled_client(own_gateway.url, workflow_id) for _ in range(CLIENTS)]
    await until(
        lambda: consumers(nats_server) == start + CLIENTS,
        lambda: f"{consumers(nats_server) - start} of {CLIENTS} consumers made",
        PROMPTLY,
    )
    # One subscription per reader, besides the connection's own (one for every request).
    subs = gateway_subscriptions(nats_server) - CLIENTS
    # Control: each client was sent more than it reads, so the gateway is stuck writing.
    await until(
        lambda: all(unread(c) > 2048 for c in clients),
        lambda: f"unread bytes: {[unread(c) for c in clients]}",
        PROMPTLY,
    )
    for client in clients:
        reset(client)
    await until(
        lambda: consumers(nats_server) == start,
        lambda: f"{consumers(nats_server) - start} consumers outlive their reset clients",
        PROMPTLY,
    )
    await until(
        lambda: gateway_subscriptions(nats_server) == subs,
        lambda: f"{gateway_subscriptions(nats_server) - subs} readers outlive their clients",
        PROMPTLY,
    )
