"""Shared reads: viewers of one execution share one JetStream consumer, each gets exactly
its events, in order, joining late or resuming from an old position included, and the
consumer is deleted when the last viewer leaves."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from mistral_workflows.dev import NatsServer
from tests.gateway.fanout_support import (
    COMPLETED,
    STARTED,
    Place,
    Publisher,
    Viewer,
    consumers_of,
)
from tests.gateway.gateway_support import Gateway, gateway_process
from tests.gateway.stalled_support import until
from tests.support import unique

VIEWERS = 30
PROMPTLY = 15


@pytest.fixture(scope="module")
def small_history(nats_server: NatsServer) -> Iterator[Gateway]:
    """A gateway whose shared reads keep only a few KiB of recent events."""
    with gateway_process(nats_server.url, None, "--read-ahead-bytes", "4096") as running:
        yield running


async def test_viewers_share_one_consumer_and_get_every_event(
    gateway: Gateway, nats_server: NatsServer
) -> None:
    """VIEWERS viewers of one execution hold one consumer between them; each gets every
    event in order; once they leave, no consumer of the execution is left."""
    place = Place(unique("gw-shared"))
    async with Publisher(nats_server.url) as publisher:
        await publisher.publish(place)  # Stored before anyone looks: caught up on their own.
        viewers = [Viewer(gateway.url, {"workflow_exec_id": place.exec_id}) for _ in range(VIEWERS)]
        reads = [asyncio.create_task(v.read(until=41)) for v in viewers]
        await until(lambda: all(v.ids for v in viewers), lambda: "viewers not started", 60)
        # Control: the count sees the shared consumer (the lone readers are gone).
        await until(
            lambda: consumers_of(nats_server, place.exec_id) == 1,
            lambda: f"{consumers_of(nats_server, place.exec_id)} consumers, not 1",
            PROMPTLY,
        )
        for _ in range(40):
            await publisher.publish(place)
        got = await asyncio.gather(*reads)
    assert got == [publisher.seqs[place]] * VIEWERS
    await until(
        lambda: consumers_of(nats_server, place.exec_id) == 0,
        lambda: f"{consumers_of(nats_server, place.exec_id)} consumers outlive the viewers",
        PROMPTLY,
    )


async def test_old_positions_catch_up_then_join_losing_and_repeating_nothing(
    small_history: Gateway, nats_server: NatsServer
) -> None:
    """With a live viewer holding the shared read, viewers resuming from positions older
    than its history (and one from the start) catch up on their own consumers, then join
    the shared read: each gets exactly the events after its position, once, in order, and
    only the shared consumer is left."""
    place = Place(unique("gw-late"))
    params = {"workflow_exec_id": place.exec_id}
    async with Publisher(nats_server.url) as publisher:
        live = Viewer(small_history.url, params)
        reading = asyncio.create_task(live.read(until=60))
        await live.connected.wait()
        for _ in range(30):  # Far more than the 4 KiB of history.
            await publisher.publish(place, pad=500)
        await until(lambda: len(live.ids) == 30, lambda: f"live got {len(live.ids)}", 60)
        seqs = publisher.seqs[place]
        late = {
            position: Viewer(small_history.url, params, {"Last-Event-ID": str(seqs[position])})
            for position in (2, 15, 28)
        }
        late[-1] = Viewer(small_history.url, params)
        late_reads = {p: asyncio.create_task(v.read(until=59 - p)) for p, v in late.items()}
        for _ in range(30):  # While they catch up.
            await publisher.publish(place, pad=500)
            await asyncio.sleep(0.01)
        got = {p: await read for p, read in late_reads.items()}
        assert await reading == seqs
    for position, ids in got.items():
        assert ids == seqs[position + 1 :], position
    await until(
        lambda: consumers_of(nats_server, place.exec_id) == 0,
        lambda: f"{consumers_of(nats_server, place.exec_id)} consumers outlive the viewers",
        PROMPTLY,
    )


async def test_viewers_with_other_filters_on_one_shared_read(
    gateway: Gateway, nats_server: NatsServer
) -> None:
    """Viewers of one execution with different event types and metadata filters share a
    read, and each gets exactly its events (the unfiltered viewer, getting them all, is
    the control that the others were offered what they must not get)."""
    place = Place(unique("gw-filtered"))
    base = {"workflow_exec_id": place.exec_id}
    viewers = {
        "all": Viewer(gateway.url, base),
        "completed": Viewer(gateway.url, {**base, "workflow_event_types": COMPLETED}),
        "started": Viewer(gateway.url, {**base, "workflow_event_types": STARTED}),
    }
    counts = {"all": 20, "completed": 10, "started": 10}
    async with Publisher(nats_server.url) as publisher:
        reads = {k: asyncio.create_task(v.read(until=counts[k])) for k, v in viewers.items()}
        await until(
            lambda: consumers_of(nats_server, place.exec_id) == 1,
            lambda: f"{consumers_of(nats_server, place.exec_id)} consumers, not 1",
            PROMPTLY,
        )
        for i in range(20):
            await publisher.publish(place, COMPLETED if i % 2 else STARTED)
        got = {k: await read for k, read in reads.items()}
    seqs = publisher.seqs[place]
    assert got["all"] == seqs
    assert got["completed"] == [s for s in seqs if publisher.kinds[s] == COMPLETED]
    assert got["started"] == [s for s in seqs if publisher.kinds[s] != COMPLETED]
