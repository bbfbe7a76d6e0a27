"""Clients that stop reading: their disconnect ends the gateway's reading at once, and what
the gateway reads ahead of them is bounded in bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from mistral_workflows.dev import NatsServer
from tests.gateway.fanout_support import consumers_of
from tests.gateway.gateway_support import Gateway, gateway_process
from tests.gateway.stalled_support import (
    delivered_events,
    gateway_subscriptions,
    publish_backlog,
    reading_settled,
    reset,
    rss_bytes,
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
    # Counted by their filter: other tests' consumers may still be going away meanwhile.
    clients = [stalled_client(own_gateway.url, workflow_id) for _ in range(CLIENTS)]
    # Each client catches up on its own consumer, besides the one their shared read holds.
    await until(
        lambda: consumers_of(nats_server, workflow_id) == CLIENTS + 1,
        lambda: f"{consumers_of(nats_server, workflow_id)} of {CLIENTS} + 1 consumers made",
        PROMPTLY,
    )
    # One subscription per reader, besides the connection's own (one for every request).
    subs = gateway_subscriptions(nats_server) - CLIENTS - 1
    # Control: each client was sent more than it reads, so the gateway is stuck writing.
    await until(
        lambda: all(unread(c) > 2048 for c in clients),
        lambda: f"unread bytes: {[unread(c) for c in clients]}",
        PROMPTLY,
    )
    for client in clients:
        reset(client)
    await until(
        lambda: consumers_of(nats_server, workflow_id) == 0,
        lambda: f"{consumers_of(nats_server, workflow_id)} consumers outlive their reset clients",
        PROMPTLY,
    )
    await until(
        lambda: gateway_subscriptions(nats_server) == subs,
        lambda: f"{gateway_subscriptions(nats_server) - subs} readers outlive their clients",
        PROMPTLY,
    )


EVENT = 147 * 1024
READ_AHEAD = 1024 * 1024
STALLED = 4


def _kernel_send_buffer() -> int:
    """The most a TCP socket's send buffer grows to: bytes the gateway hands the kernel."""
    with open("/proc/sys/net/ipv4/tcp_wmem") as limits:
        return int(limits.read().split()[2])


async def _read_ahead(server: NatsServer, *flags: str) -> tuple[int, int]:
    """The most bytes delivered to one of STALLED readers whose clients leave a backlog of
    large events unread, and the gateway's memory growth, once its readers stopped."""
    workflow_id = unique("gw-large")
    await publish_backlog(server.url, workflow_id, 250, EVENT)
    with gateway_process(server.url, None, *flags) as gateway:
        before = rss_bytes(gateway.process.pid)
        clients = [stalled_client(gateway.url, workflow_id) for _ in range(STALLED)]
        await until(
            lambda: consumers_of(server, workflow_id) == STALLED + 1,
            lambda: f"{consumers_of(server, workflow_id)} of {STALLED} + 1 consumers made",
            PROMPTLY,
        )
        for _ in range(2):  # Settled twice, a moment apart: no delivery in between.
            await until(lambda: reading_settled(server), lambda: "still reading", 60)
            await asyncio.sleep(0.5)
        delivered = max(delivered_events(server)) * EVENT
        growth = rss_bytes(gateway.process.pid) - before
        for client in clients:
            reset(client)
    return delivered, growth


async def test_read_ahead_of_stalled_clients_is_bounded_in_bytes(nats_server: NatsServer) -> None:
    """Readers of clients that stop reading large events pull from NATS no more than the
    byte bound (and what the kernel's socket buffer holds), and the gateway's memory grows
    in proportion; control: with the bound lifted, the readers pull the whole backlog."""
    per_client = 2 * READ_AHEAD + _kernel_send_buffer() + 3 * EVENT
    delivered, growth = await _read_ahead(nats_server, "--read-ahead-bytes", str(READ_AHEAD))
    assert delivered <= per_client, f"{delivered >> 10} KiB read ahead of a stalled client"
    assert growth < STALLED * per_client + 40 * 2**20, f"grew {growth >> 20} MiB"
    lifted, _ = await _read_ahead(
        nats_server, "--read-ahead-bytes", str(10**10), "--total-read-ahead-bytes", str(10**11)
    )
    assert lifted > per_client, f"control: only {lifted >> 10} KiB read without the bound"
