"""The reader hands out each message once, in order, when it replaces its consumer while the
old one still has pull requests: deleting it ends them with "409 Consumer Deleted", and when
the deletion fails (its server is gone, the cluster is electing) it goes on delivering."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, ConsumerInfo, DeliverPolicy

from mistral_workflows.consumer import _consumers
from mistral_workflows.consumer._reader import Reader
from tests.support import unique

BEFORE, AFTER = 10, 40  # messages published before and after the consumer is replaced
QUIET = 0.5  # seconds without a message after the last one: nothing more is coming


def assert_once_in_order(seqs: Sequence[int], last: int) -> None:
    """Stream sequences 1..last, each once, in order."""
    repeated = sorted({s for s in seqs if seqs.count(s) > 1})
    assert not repeated, f"read more than once: {repeated[:20]} ({len(seqs)} reads)"
    missing = sorted(set(range(1, last + 1)) - set(seqs))
    assert not missing, f"missing: {missing[:20]}"
    assert list(seqs) == sorted(seqs), "out of order"


@pytest.fixture
async def stream(nats_url: str) -> AsyncIterator[tuple[NATS, str, str]]:
    """A connection, a stream of our own and its subject."""
    nc = await nats.connect(nats_url)
    name, subject = unique("ONCE").replace("-", "_"), unique("once")
    await nc.jetstream().add_stream(name=name, subjects=[f"{subject}.>"])
    try:
        yield nc, name, f"{subject}.x"
    finally:
        await nc.jetstream().delete_stream(name)
        await nc.close()


async def read_until(reader: Reader, last: int, quiet: float | None = QUIET) -> list[int]:
    """Stream sequences read until `last`, then whatever else comes before a `quiet` spell
    (nothing else if None)."""
    seqs: list[int] = []
    while last not in seqs or quiet is not None:
        msg = await reader.next(None if last not in seqs else quiet)
        if msg is None:
            break
        seqs.append(msg.metadata.sequence.stream)
    return seqs


async def publish(nc: NATS, subject: str, n: int) -> None:
    js = nc.jetstream()
    for _ in range(n):
        await js.publish(subject, b"x")
        await asyncio.sleep(0)  # let the consumers deliver while we publish


async def replace_consumer(
    nc: NATS, stream: tuple[NATS, str, str], monkeypatch: pytest.MonkeyPatch, deletion_fails: bool
) -> tuple[list[int], list[Msg], int]:
    """Read BEFORE messages, replace the consumer while the old one has pull requests
    outstanding, publish AFTER more and read them all. Returns what the reader read, what
    a spy on the old consumer's inbox received, and how many consumers the reader created."""
    admin, name, subject = stream
    await publish(admin, subject, BEFORE)
    created = 0
    create = _consumers.create_consumer

    async def counted(nc: NATS, stream: str, config: ConsumerConfig) -> ConsumerInfo:
        nonlocal created
        # Not counted: the short-lived consumers that ask where the stream ends.
        created += config.deliver_policy != DeliverPolicy.NEW
        return await create(nc, stream, config)

    monkeypatch.setattr(_consumers, "create_consumer", counted)

    async def not_deleted(*args: object) -> None:
        return None

    if deletion_fails:
        monkeypatch.setattr(_consumers, "delete_consumer", not_deleted)
    reader = Reader(nc, name, [subject], batch=16)
    await reader.open()
    try:
        seqs = await read_until(reader, BEFORE, quiet=None)
        assert reader._sub is not None
        stale: list[Msg] = []

        async def keep(msg: Msg) -> None:
            stale.append(msg)

        spy = await admin.subscribe(reader._sub.subject, cb=keep)
        await admin.flush()  # the spy listens before the reader lets go of the inbox
        await reader._create_consumer()  # what a gap, a silence or a lost consumer does
        publishing = asyncio.create_task(publish(admin, subject, AFTER))
        seqs += await asyncio.wait_for(read_until(reader, BEFORE + AFTER), 60)
        await publishing
        await spy.unsubscribe()
    finally:
        await reader.close()
    return seqs, stale, created


@pytest.mark.parametrize("deletion_fails", [False, True])
async def test_a_replaced_consumer_is_not_read_from(
    nats_url: str,
    stream: tuple[NATS, str, str],
    monkeypatch: pytest.MonkeyPatch,
    deletion_fails: bool,
) -> None:
    """After the reader replaces its consumer, what the old one still sends (the end of its
    pull requests, or more messages) is ignored: every message once, in order, none skipped."""
    nc = await nats.connect(nats_url)
    try:
        seqs, _, created = await replace_consumer(nc, stream, monkeypatch, deletion_fails)
    finally:
        await nc.close()
    assert_once_in_order(seqs, BEFORE + AFTER)
    assert created == 2, "the old consumer's end made the reader replace the new one"


async def test_negative_control_the_old_consumer_does_keep_delivering(
    nats_url: str, stream: tuple[NATS, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scenario is real: a replaced consumer whose deletion failed goes on sending to
    its old inbox messages that the reader also reads from the new one."""
    nc = await nats.connect(nats_url)
    try:
        seqs, stale, _ = await replace_consumer(nc, stream, monkeypatch, deletion_fails=True)
    finally:
        await nc.close()
    delivered = [m.metadata.sequence.stream for m in stale if not m.headers]
    assert any(s > BEFORE for s in delivered), "the old consumer stopped delivering"
    assert set(delivered) <= set(seqs)


def test_negative_control_the_check_catches_repeats_losses_and_disorder() -> None:
    """The once-in-order check fails on a repeated, a missing and a reordered message."""
    assert_once_in_order([1, 2, 3], 3)
    with pytest.raises(AssertionError, match="more than once"):
        assert_once_in_order([1, 2, 2, 3], 3)
    with pytest.raises(AssertionError, match="missing"):
        assert_once_in_order([1, 3], 3)
    with pytest.raises(AssertionError, match="order"):
        assert_once_in_order([2, 1, 3], 3)
