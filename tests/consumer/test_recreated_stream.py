"""A stream deleted and created again, or a server restarted on an empty store, restarts its
sequences at 1: readers say so with a `Gap` and read the new stream, never wait in silence."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from mistral_workflows import Gap, StreamEvent, subscribe
from mistral_workflows.core import subjects
from mistral_workflows.dev import NatsServer
from tests.consumer.test_resume import ids, publish
from tests.support import consumer_made, unique

# Bounds every wait: a reader that stays silent fails the test instead of hanging it.
PATIENCE = 30
QUIET = 0.5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A server of this module's own: its tests delete the stream."""
    with NatsServer(store_dir=tmp_path_factory.mktemp("recreated")) as running:
        yield running


async def delete_stream(url: str) -> None:
    """Delete the event stream, if there is one: the next `publish` creates it again."""
    nc = await nats.connect(url)
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await nc.jetstream().delete_stream(subjects.DEFAULT_STREAM_NAME)
    await nc.close()


class Follower:
    """A live `subscribe` in a task of its own, recording what it yields and hears."""

    def __init__(self, url: str, wid: str, until: int, from_now: bool = False) -> None:
        self.seen: list[StreamEvent] = []
        self.gaps: list[Gap] = []
        self.read = {n: asyncio.Event() for n in range(1, until + 1)}
        self.task = asyncio.create_task(self._follow(url, wid, until, from_now))

    async def _follow(self, url: str, wid: str, until: int, from_now: bool) -> None:
        events = subscribe(url, workflow_exec_id=wid, from_now=from_now, on_gap=self.gaps.append)
        async for event in events:
            self.seen.append(event)
            self.read[len(self.seen)].set()
            if len(self.seen) == until:
                return

    async def has_read(self, n: int) -> None:
        await asyncio.wait_for(self.read[n].wait(), PATIENCE)

    async def done(self) -> None:
        await asyncio.wait_for(self.task, PATIENCE)


class Heard(logging.Handler):
    """Sets `event` once a log record contains `text`."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


async def delete_stream_under_a_reader(url: str) -> None:
    """Delete the stream and return once a reader has found it missing (it logs so)."""
    heard = Heard("does not exist yet")
    logging.getLogger("mistral_workflows").addHandler(heard)
    try:
        await delete_stream(url)
        await asyncio.wait_for(heard.event.wait(), PATIENCE)
    finally:
        logging.getLogger("mistral_workflows").removeHandler(heard)


def expected(first: int, last: int) -> list[str]:
    return [f"event-{i}" for i in range(first, last + 1)]


async def test_live_subscriber_hears_of_a_recreated_stream(server):
    """A live reader whose stream is deleted and created again with fewer events gets a
    recreated `Gap` from its old position to 1, then the new stream's events."""
    wid = unique("live")
    await publish(server.url, wid, 0, 10)
    follower = Follower(server.url, wid, until=13)
    await follower.has_read(10)
    position = follower.seen[-1].broker_sequence + 1
    await delete_stream(server.url)
    await publish(server.url, wid, 10, 3)  # the stream is created again: sequences 1..3
    await follower.done()
    assert follower.gaps == [Gap(position, 1, recreated=True)]
    assert "recreated" in str(follower.gaps[0])
    assert ids(follower.seen) == expected(0, 12)
    assert [e.broker_sequence for e in follower.seen[10:]] == [1, 2, 3]


async def test_a_stream_back_longer_than_the_position_is_still_a_new_one(server):
    """A reader that saw its stream vanish reads the new one from its start, even when the
    new one already holds more events than the old position (sequences alone look fine)."""
    wid = unique("longer")
    await delete_stream(server.url)
    await publish(server.url, wid, 0, 5)  # sequences 1..5 of a stream of its own
    follower = Follower(server.url, wid, until=5 + 8)
    await follower.has_read(5)
    await delete_stream_under_a_reader(server.url)
    await publish(server.url, wid, 5, 8)  # sequences 1..8: past the old position 6
    await follower.done()
    assert follower.gaps == [Gap(6, 1, recreated=True)]
    assert ids(follower.seen) == expected(0, 12)


async def test_a_from_now_reader_reads_all_of_a_new_stream(server):
    """A `from_now` reader that has read nothing yet, whose stream vanished, reads the new
    stream from its first event (all of it is newer than the reader), with no notice."""
    wid = unique("from-now")
    await publish(server.url, wid, 0, 2)
    async with consumer_made(server.url) as made:
        follower = Follower(server.url, wid, until=3, from_now=True)
        await made()
    await delete_stream_under_a_reader(server.url)
    await publish(server.url, wid, 2, 3)
    await follower.done()
    assert follower.gaps == []
    assert ids(follower.seen) == expected(2, 4)


async def test_resume_past_the_end_of_a_recreated_stream(server):
    """Resuming at the old last + 1 after the stream was recreated gets a recreated `Gap`
    and the new stream's events, instead of waiting for sequences that will never come."""
    wid = unique("resume")
    await publish(server.url, wid, 0, 10)
    old = [e async for e in subscribe(server.url, workflow_exec_id=wid, idle_timeout=QUIET)]
    await delete_stream(server.url)
    await publish(server.url, wid, 10, 3)
    gaps: list[Gap] = []
    resumed = subscribe(
        server.url,
        workflow_exec_id=wid,
        start_seq=old[-1].broker_sequence + 1,
        idle_timeout=QUIET,
        on_gap=gaps.append,
    )
    rest = [e async for e in resumed]
    assert gaps == [Gap(old[-1].broker_sequence + 1, 1, recreated=True)]
    assert ids(rest) == expected(10, 12)


async def test_resume_on_an_empty_recreated_stream_is_told_at_once(server):
    """A resume on a recreated stream that holds nothing yet is told before any event, then
    reads the new stream's events as they come."""
    wid = unique("empty")
    await publish(server.url, wid, 0, 4)
    await delete_stream(server.url)
    await publish(server.url, unique("other"), 0, 0)  # the stream exists again, empty
    gaps: list[Gap] = []
    told = asyncio.Event()

    def on_gap(gap: Gap) -> None:
        gaps.append(gap)
        told.set()

    # 5: past the end of the new stream, where the old one was after its 4 events.
    events = subscribe(server.url, workflow_exec_id=wid, start_seq=5, on_gap=on_gap)
    first = asyncio.create_task(anext(events))
    await asyncio.wait_for(told.wait(), PATIENCE)
    await publish(server.url, wid, 4, 1)
    event = await asyncio.wait_for(first, PATIENCE)
    await events.aclose()
    assert gaps == [Gap(5, 1, recreated=True)]
    assert (event.data.event_id, event.broker_sequence) == ("event-4", 1)


async def test_subscriber_hears_of_a_server_restarted_on_an_empty_store(tmp_path: Path):
    """A server killed and started again on an empty store (same port) has a new stream:
    the live reader gets a recreated `Gap`, then the new events."""
    wid = unique("wiped")
    with NatsServer(store_dir=tmp_path / "old") as first:
        await publish(first.url, wid, 0, 10)
        follower = Follower(first.url, wid, until=13)
        await follower.has_read(10)
        first.kill()
        with NatsServer(port=first.port, store_dir=tmp_path / "new") as second:
            await publish(second.url, wid, 10, 3)
            await follower.done()
    assert follower.gaps == [Gap(11, 1, recreated=True)]
    assert ids(follower.seen) == expected(0, 12)


async def test_negative_control_same_stream_resumes_without_notice(server):
    """On the same stream, a resume at last + 1 (nothing new, then new events), and resumes
    after a purge (which keeps the last sequence) at the last event of the workflow + 1 or
    of the stream + 1, are never told the stream was recreated, and lose nothing."""
    wid = unique("same")
    await publish(server.url, wid, 0, 6)
    gaps: list[Gap] = []
    old = [e async for e in subscribe(server.url, workflow_exec_id=wid, idle_timeout=QUIET)]
    after = old[-1].broker_sequence + 1
    options = {"workflow_exec_id": wid, "idle_timeout": QUIET, "on_gap": gaps.append}
    assert [e async for e in subscribe(server.url, start_seq=after, **options)] == []
    await publish(server.url, wid, 6, 2)
    rest = [e async for e in subscribe(server.url, start_seq=after, **options)]
    assert ids(rest) == expected(6, 7)
    await publish(server.url, unique("other"), 0, 3)  # the stream goes on past `wid`
    nc = await nats.connect(server.url)
    await nc.jetstream().purge_stream(subjects.DEFAULT_STREAM_NAME)
    end = (await nc.jetstream().stream_info(subjects.DEFAULT_STREAM_NAME)).state.last_seq
    await nc.close()
    assert gaps == []
    for after in (rest[-1].broker_sequence + 1, end + 1):
        assert [e async for e in subscribe(server.url, start_seq=after, **options)] == []
    # Resuming before the purged events is told as expired (what it is), never recreated.
    assert [gap.recreated for gap in gaps] == [False]


async def test_negative_control_a_lost_consumer_is_not_a_new_stream(server):
    """A live reader whose consumer is deleted under it (the stream stays) replaces it from
    its position with no notice: each event once, in order."""
    wid = unique("lost")
    await publish(server.url, wid, 0, 5)
    follower = Follower(server.url, wid, until=8)
    await follower.has_read(5)
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    for info in await js.consumers_info(subjects.DEFAULT_STREAM_NAME):
        await js.delete_consumer(subjects.DEFAULT_STREAM_NAME, info.name)
    await nc.close()
    await publish(server.url, wid, 5, 3)
    await follower.done()
    assert follower.gaps == []
    assert ids(follower.seen) == expected(0, 7)
