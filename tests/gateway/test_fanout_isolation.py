"""Shared reads never leak: viewers of one execution id holding tokens of two tenants and
two trees each get exactly their own events; a stalled viewer is cut loose without
slowing the others, and resumes with nothing lost."""

from __future__ import annotations

import asyncio

import nats

from mistral_workflows.core import subjects
from mistral_workflows.dev import NatsServer
from mistral_workflows.gateway import mint_token
from mistral_workflows.gateway._batch import Batch
from mistral_workflows.gateway._fanout import Hub
from mistral_workflows.gateway._outbox import ReadAhead
from tests.gateway.fanout_support import (
    COMPLETED,
    STARTED,
    Place,
    Publisher,
    Viewer,
    consumers_of,
    ids_in,
    read_socket,
)
from tests.gateway.gateway_support import SECRET, Gateway, gateway_process
from tests.gateway.stalled_support import reset, stalled_client, until
from tests.support import unique

PROMPTLY = 15


async def test_two_tenants_and_two_trees_get_only_their_own_events(
    secured_gateway: Gateway, gateway: Gateway, nats_server: NatsServer
) -> None:
    """One execution id in tenant A's trees RA and RA2 and in tenant B: each token's
    viewers (two of each, sharing a read) get exactly the events their token grants; the
    development gateway, which confines nothing, gets all of them (the control that the
    other tenants' events were there to leak)."""
    exec_id, ra, ra2, rb = (unique(name) for name in ("gw-iso", "ra", "ra2", "rb"))
    places = [Place(exec_id, "tenant-a", ra), Place(exec_id, "tenant-a", ra2)]
    places.append(Place(exec_id, "tenant-b", rb))
    a, a2, b = places
    key = SECRET.encode()
    grants = {
        "tenant a": (mint_token(key, "tenant-a"), [a, a2], None),
        "tree ra": (mint_token(key, "tenant-a", ra), [a], None),
        "tree ra2": (mint_token(key, "tenant-a", ra2), [a2], None),
        "tenant b": (mint_token(key, "tenant-b"), [b], None),
        "tenant a, completed": (mint_token(key, "tenant-a"), [a, a2], COMPLETED),
    }
    async with Publisher(nats_server.url) as publisher:
        for place in places:
            await publisher.publish(place)  # Stored before anyone looks.
        viewers: dict[str, list[Viewer]] = {}
        for name, (token, _, kind) in grants.items():
            params = {"workflow_exec_id": exec_id}
            if kind is not None:
                params["workflow_event_types"] = kind
            headers = {"Authorization": f"Bearer {token}"}
            viewers[name] = [Viewer(secured_gateway.url, params, headers) for _ in range(2)]
        everything = Viewer(gateway.url, {"workflow_exec_id": exec_id})
        all_viewers = [v for pair in viewers.values() for v in pair] + [everything]
        reads = [asyncio.create_task(v.read(until=10**6)) for v in all_viewers]
        # One shared read per distinct grant (the event types are filtered per viewer).
        await until(
            lambda: consumers_of(nats_server, exec_id) == 5,
            lambda: f"{consumers_of(nats_server, exec_id)} consumers, not 4 + 1",
            PROMPTLY,
        )
        for i in range(12):
            await publisher.publish(places[i % 3], COMPLETED if i % 2 else STARTED)
        last = max(max(seqs) for seqs in publisher.seqs.values())
        await until(lambda: everything.ids[-1:] == [last], lambda: "not all published", 60)
        await asyncio.sleep(1)  # Anything that would leak has come by now.
        for read in reads:
            read.cancel()
        await asyncio.gather(*reads, return_exceptions=True)
    every = sorted(s for seqs in publisher.seqs.values() for s in seqs)
    assert everything.ids == every
    for name, (_, granted, kind) in grants.items():
        expected = sorted(s for place in granted for s in publisher.seqs[place])
        if kind is not None:
            expected = [s for s in expected if publisher.kinds[s] == kind]
        for viewer in viewers[name]:
            assert viewer.ids == expected, name
    await until(lambda: consumers_of(nats_server, exec_id) == 0, lambda: "consumers left", 15)


async def test_a_stalled_viewer_is_cut_loose_and_resumes_with_nothing_lost(
    nats_server: NatsServer,
) -> None:
    """A viewer that stops reading while events come does not hold up another viewer,
    which gets every event; it is cut loose (a comment says so) and reads on its own, and
    once it reads again it gets every event, in order."""
    place = Place(unique("gw-stall"))
    count = 300  # About 9 MB: more than the kernel's socket buffers hold.
    with gateway_process(nats_server.url, None, "--read-ahead-bytes", "65536") as gw:
        async with Publisher(nats_server.url) as publisher:
            reader = Viewer(gw.url, {"workflow_exec_id": place.exec_id})
            reading = asyncio.create_task(reader.read(until=count))
            stalled = stalled_client(gw.url, place.exec_id)
            await until(lambda: consumers_of(nats_server, place.exec_id) == 1, lambda: "", 15)
            for _ in range(count):
                await publisher.publish(place, pad=30_000)
            got = await reading
            # Cut loose, it reads on its own consumer, besides the shared one.
            await until(lambda: consumers_of(nats_server, place.exec_id) == 2, lambda: "", 15)
            raw = await asyncio.to_thread(read_socket, stalled, publisher.seqs[place][-1])
            reset(stalled)
    assert got == publisher.seqs[place]
    assert ids_in(raw) == publisher.seqs[place]
    assert b": behind:" in raw


class _Member:
    """A viewer that takes everything, for the hand-off rule."""

    def __init__(self, start: int) -> None:
        self.next = start
        self.ids: list[int] = []

    def offer(self, batch: Batch) -> bool:
        self.ids.extend(batch.seqs)
        self.next = batch.last + 1
        return True

    def notice(self, message: bytes) -> None:
        pass

    def cut_loose(self, failure: bytes | None) -> None:
        pass


async def test_a_viewer_joins_only_where_the_history_holds_its_position(
    nats_server: NatsServer,
) -> None:
    """Once a hub's history was cut, a viewer behind its start may not join (it would
    miss events: the control joins one anyway and sees the hole); at the start of the
    history it joins and gets every event from there."""
    place = Place(unique("gw-handoff"))
    nc = await nats.connect(nats_server.url)
    subject = f"{subjects.DEFAULT_PREFIX}.*.*.*.*.*.{subjects.token(place.exec_id)}.>"
    hub = Hub(nc, subjects.DEFAULT_STREAM_NAME, subject, ReadAhead(4096, 1 << 30))
    try:
        async with Publisher(nats_server.url) as publisher:
            hub.start()
            await hub.opened()
            for _ in range(20):
                await publisher.publish(place, pad=500)
        seqs = publisher.seqs[place]
        await until(lambda: hub.next > seqs[-1], lambda: "the hub did not read all", 15)
        assert seqs[2] < hub.base <= seqs[-1]
        assert not hub.joinable(seqs[2], proven=True, caught_up=True)
        control = _Member(seqs[2])
        hub.join(control, "control", lambda event: True)
        assert control.ids != seqs[2:]  # Joined anyway: events are missing.
        assert hub.joinable(hub.base, proven=True, caught_up=False)
        member = _Member(hub.base)
        hub.join(member, "member", lambda event: True)
        assert member.ids == [s for s in seqs if s >= hub.base]
    finally:
        await hub.stop()
        await nc.close()
