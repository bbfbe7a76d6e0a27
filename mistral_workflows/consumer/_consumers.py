"""JetStream consumers for reading: named at random, created and deleted with the
permission checks, and cleaned up when their creator is cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence

import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy

from mistral_workflows.core.connection import permitted

__all__ = [
    "consumer_config",
    "consumer_name",
    "create_consumer",
    "create_or_clean_up",
    "delete_consumer",
    "last_sequence",
    "start_of",
]

# The server deletes a consumer nobody has pulled from for this long (seconds).
_INACTIVE_THRESHOLD = 60.0


def consumer_name() -> str:
    """A fresh consumer name: 128 random bits, so that no other user can guess it."""
    return uuid.uuid4().hex


async def create_consumer(nc: NATS, stream: str, config: ConsumerConfig) -> ConsumerInfo:
    """Create the named consumer `config` on `stream`; a denial is an error at once.

    Raises:
        nats.js.errors.NotFoundError: the stream does not exist.
        BrokerConnectionError: the NATS user may not create this consumer.
    """
    filters = config.filter_subjects or [config.filter_subject or ">"]
    subject = f"$JS.API.CONSUMER.CREATE.{stream}.{config.name}"
    if len(filters) == 1 and filters[0] != ">":
        subject += f".{filters[0]}"
    what = f"creating a consumer on stream {stream!r} for {' '.join(filters)}"
    return await permitted(nc, nc.jetstream().add_consumer(stream, config), subject, what)


async def delete_consumer(nc: NATS, stream: str, name: str) -> None:
    """Delete a consumer, best effort: the server drops inactive ones by itself anyway."""
    subject = f"$JS.API.CONSUMER.DELETE.{stream}.{name}"
    with contextlib.suppress(Exception):
        call = nc.jetstream().delete_consumer(stream, name)
        await permitted(nc, call, subject, f"deleting consumer {name}")


async def last_sequence(nc: NATS, stream: str, filter_subject: str) -> int:
    """The stream's last sequence (0 if it does not exist), asking only for `filter_subject`.

    A consumer that delivers new messages only starts right after the last one, which
    tells it without `STREAM.INFO` (which a tenant may not be allowed to read).
    """
    config = consumer_config(consumer_name(), [filter_subject], DeliverPolicy.NEW, None)
    try:
        info = await create_consumer(nc, stream, config)
    except nats.js.errors.NotFoundError:
        return 0
    await delete_consumer(nc, stream, str(config.name))
    return start_of(info) - 1


async def create_or_clean_up(nc: NATS, stream: str, config: ConsumerConfig) -> ConsumerInfo:
    """Create a consumer; if the reader is cancelled meanwhile (its client left), delete
    the consumer as soon as the server has made it, rather than leave it to expire."""
    creating = asyncio.ensure_future(create_consumer(nc, stream, config))
    try:
        return await asyncio.shield(creating)
    except asyncio.CancelledError:
        creating.add_done_callback(lambda done: _delete_made(done, nc, stream))
        raise


_deleting: set[asyncio.Task[None]] = set()


def _delete_made(done: asyncio.Future[ConsumerInfo], nc: NATS, stream: str) -> None:
    if done.cancelled() or done.exception() is not None:
        return  # Nothing was made.
    task = asyncio.ensure_future(delete_consumer(nc, stream, str(done.result().name)))
    _deleting.add(task)
    task.add_done_callback(_deleting.discard)


def start_of(info: ConsumerInfo) -> int:
    """The first stream sequence a new consumer delivers: after the last one for NEW, and the
    stream's first one when the requested start sequence is no longer stored."""
    return int(info.delivered.stream_seq) + 1 if info.delivered else 1


def consumer_config(
    name: str, filters: Sequence[str], policy: DeliverPolicy, start: int | None
) -> ConsumerConfig:
    return ConsumerConfig(
        name=name,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=_INACTIVE_THRESHOLD,
        mem_storage=True,
        num_replicas=1,
        deliver_policy=policy,
        opt_start_seq=start,
        filter_subject=filters[0] if len(filters) == 1 else None,
        filter_subjects=list(filters) if len(filters) > 1 else None,
    )
