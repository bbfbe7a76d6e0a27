"""Soak: hundreds of clients connect, stall and reset; the gateway comes back to where it
started, in memory and in JetStream consumers."""

from __future__ import annotations

from mistral_workflows.dev import NatsServer
from tests.gateway.gateway_support import gateway_process
from tests.gateway.stalled_support import (
    consumers,
    publish_backlog,
    reset,
    rss_bytes,
    stalled_client,
    unread,
    until,
)
from tests.support import unique

ROUNDS = 8
CLIENTS = 50
PROMPTLY = 10
MARGIN = 40 * 2**20
WARM_UP = ROUNDS // 2


async def test_clients_that_stall_and_reset_leave_nothing_behind(nats_server: NatsServer) -> None:
    """After ROUNDS x CLIENTS clients that stopped reading a busy stream and reset their
    connection, the gateway's consumers are back at their start within seconds and its
    memory within MARGIN of what it held after the warm-up rounds."""
    workflow_id = unique("gw-soak")
    await publish_backlog(nats_server.url, workflow_id, 400, 8192)
    with gateway_process(nats_server.url, None) as gateway:
        start = consumers(nats_server)
        baseline = 0
        for round_ in range(ROUNDS):
            await _stall_and_reset(nats_server, gateway.url, workflow_id, start)
            if round_ == WARM_UP - 1:
                # The allocator keeps what the busiest rounds needed: measure from here.
                await until(lambda: consumers(nats_server) == start, lambda: "warm-up", PROMPTLY)
                baseline = rss_bytes(gateway.process.pid)
        await until(
            lambda: consumers(nats_server) == start,
            lambda: f"{consumers(nats_server) - start} consumers outlive their clients",
            PROMPTLY,
        )
        pid = gateway.process.pid
        await until(
            lambda: rss_bytes(pid) < baseline + MARGIN,
            lambda: f"memory {rss_bytes(pid) >> 20} MiB, after the warm-up {baseline >> 20}",
            PROMPTLY,
        )


async def _stall_and_reset(server: NatsServer, url: str, workflow_id: str, start: int) -> None:
    """CLIENTS clients open the stream, are sent more than they read, and reset."""
    clients = [stalled_client(url, workflow_id) for _ in range(CLIENTS)]
    await until(
        lambda: consumers(server) >= start + CLIENTS,
        lambda: f"{consumers(server) - start} of {CLIENTS} consumers made",
        PROMPTLY,
    )
    await until(
        lambda: all(unread(c) > 2048 for c in clients),
        lambda: "clients were not sent their backlog",
        PROMPTLY,
    )
    for client in clients:
        reset(client)
