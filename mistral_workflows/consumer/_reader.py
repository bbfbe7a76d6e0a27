"""A pull consumer that reads a JetStream stream in order with low latency.

nats-py's `fetch` waits for a whole batch before returning and its ordered push consumer
drops messages when its pending limit overflows, so we drive the pull protocol directly:
an ephemeral consumer with no acks, pull requests that are topped up when half used
(bounded buffering, messages handed over as soon as they arrive), idle heartbeats, and a
new consumer from the last delivered sequence whenever the old one is lost or skips.

Each consumer gets its own reply inbox. A replaced consumer may still be alive (its deletion
failed during a failover, or its messages were already on the way): what it sends goes to an
inbox nobody listens to any more, so it can neither be delivered twice nor end the new
consumer's pull requests (deleting it answers them with "409 Consumer Deleted"). As a last
line of defence, a message at or below the last delivered stream sequence is never handed
out again. A request the cluster cannot answer now (an election after a node died) is
retried, so a reader outlives a failover.

Every consumer is named (a random, unguessable name) and created with its filter in the
request subject (`$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`), so that NATS
permissions can confine a user to the subjects of its tenant; nothing here needs stream
info or lookups. A denied request fails at once with the server's reason.

A position means nothing in another stream. When the stream is deleted and created again
(or its server restarts on an empty store), sequences start again at 1, and a consumer made
"from sequence N" would wait for sequences the new stream may take days to reach. So the
reader checks, whenever it makes a consumer from a position and nothing is pending, that
the stream still reaches that position (`last_sequence`: asked with the reader's own filter,
which tenants are allowed, it answers the stream's last sequence), and takes a stream that
vanished under a live reader for a new one. Either way it says so with a `Gap` and reads the
new stream from its start. A new stream that already reaches the position when the reader
first looks cannot be told apart without its creation time, which tenants may not read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

import nats.js.errors
import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import ConsumerInfo, DeliverPolicy

from mistral_workflows.consumer import _consumers
from mistral_workflows.consumer._consumers import consumer_config, consumer_name, start_of
from mistral_workflows.consumer._gap import Gap, log_gap
from mistral_workflows.core.connection import denied
from mistral_workflows.core.encoding import PENDING_MESSAGES, STATUS
from mistral_workflows.core.errors import BrokerConnectionError

__all__ = ["Reader"]

log = logging.getLogger("mistral_workflows")

_HEARTBEAT = 2.0
_STREAM_POLL = 0.5
_PULL_EXPIRES = 30.0
_END_OF_REQUEST = frozenset({"404", "408", "409"})
# A pull request with `max_bytes` ends with this 409 when its next message would not fit.
_EXCEEDS_MAX_BYTES = "Message Size Exceeds MaxBytes"
# How long `open` retries a consumer creation the cluster cannot answer (while it elects a
# leader) before giving up; once open, a reader retries for as long as it is read.
_OPEN_PATIENCE = 30.0
# Answers that only mean "not now": the request timed out or JetStream is electing.
_TRANSIENT = (TimeoutError, nats.js.errors.ServiceUnavailableError)


class Reader:
    """Reads the messages matching `filters` from `stream`, from `start_seq` on, in order.

    `on_gap` hears when the stream turns out to be another one than the position came from
    (it was recreated): reading then goes on from the new stream's first message.
    Up to `batch` messages are requested ahead of the caller; with `max_bytes`, each pull
    request also stops at that many bytes (a larger message comes alone).
    """

    def __init__(
        self,
        nc: NATS,
        stream: str,
        filters: Sequence[str],
        start_seq: int | None = None,
        batch: int = 256,
        new_only: bool = False,
        on_gap: Callable[[Gap], None] = log_gap,
        max_bytes: int | None = None,
    ) -> None:
        self._nc = nc
        self._stream = stream
        self._filters = list(filters)
        self._next_seq = start_seq
        self._new_only = new_only
        self._batch = batch
        self._on_gap = on_gap
        self._vanished = False  # the stream was missing after a consumer of ours existed
        self._max_bytes = max_bytes
        self._sub: Subscription | None = None
        self._inbox = ""
        self._consumer = ""
        self._outstanding = 0
        self._consumer_seq = 0
        self._last_seen = 0.0
        self._warned: set[str] = set()  # the warnings already logged
        self._errors_before: BaseException | None = None
        self.first_seq: int | None = None
        """The first stream sequence the reader can deliver, once its consumer exists: higher
        than `start_seq` when the stream no longer holds what was asked for."""
        self.caught_up = False
        """Whether the last message handed out was the last one stored that matches (or
        nothing matched when the consumer was made): JetStream's pending count was 0."""

    async def open(self) -> None:
        """Create the consumer and issue the first pull request.

        Raises:
            TimeoutError: JetStream did not answer for `_OPEN_PATIENCE` seconds.
            BrokerConnectionError: the NATS user may not create this consumer.
        """
        self._errors_before = self._nc.last_error
        deadline = time.monotonic() + _OPEN_PATIENCE
        while True:
            try:
                await self._create_consumer()
                return
            except nats.js.errors.NotFoundError:
                self._stream_missing()
                return
            except _TRANSIENT:
                if time.monotonic() > deadline:
                    raise
                self._unanswered()
                await asyncio.sleep(_STREAM_POLL)

    async def close(self) -> None:
        """Unsubscribe and delete the consumer (it would expire on its own anyway)."""
        if self._sub is not None and not self._nc.is_closed:
            await self._sub.unsubscribe()
            if self._consumer:
                await _consumers.delete_consumer(self._nc, self._stream, self._consumer)
        self._sub = None

    async def next(self, timeout: float | None) -> Msg | None:
        """The next message in stream order, or None after `timeout` seconds of silence."""
        assert self._sub is not None, "call open() first"
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._check_permitted()
            wait = _HEARTBEAT * 3
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return None
            if not self._consumer and not await self._ensure_consumer():
                await asyncio.sleep(min(_STREAM_POLL, wait))
                continue
            try:
                msg = await self._sub.next_msg(timeout=wait)
            except TimeoutError:
                if time.monotonic() - self._last_seen > _HEARTBEAT * 3:
                    await self._ensure_consumer()  # The consumer or the server went away.
                continue
            self._last_seen = time.monotonic()
            status = msg.headers.get(STATUS) if msg.headers else None
            if status is None and await self._accept(msg):
                return msg
            if status in _END_OF_REQUEST:
                await self._end_of_request(msg, status)

    def _check_permitted(self) -> None:
        """Raise if the server denied our pulls or our inbox: nothing would ever arrive."""
        pull = f"$JS.API.CONSUMER.MSG.NEXT.{self._stream}.{self._consumer}"
        violation = denied(self._nc, self._errors_before, pull, self._inbox)
        if violation is not None:
            raise BrokerConnectionError(
                f"NATS refused to deliver stream {self._stream!r} ({violation}): the NATS "
                f"user needs permission to publish on {pull} and to subscribe to its reply "
                "inbox; see docs/security.md for the permissions consumers need"
            )

    async def _accept(self, msg: Msg) -> bool:
        meta = msg.metadata
        if meta.consumer != self._consumer:
            return False  # Sent by a replaced consumer before it got our new inbox.
        self._outstanding -= 1
        if meta.sequence.consumer != self._consumer_seq + 1:
            # A gap: start over from the last message we handed out.
            await self._ensure_consumer()
            return False
        self._consumer_seq = meta.sequence.consumer
        if self._outstanding <= self._batch // 2:
            await self._pull(self._batch)
        if self._next_seq is not None and meta.sequence.stream < self._next_seq:
            return False  # Handed out already (or before the requested start).
        self._next_seq = meta.sequence.stream + 1
        self.caught_up = meta.num_pending == 0
        return True

    async def _end_of_request(self, msg: Msg, status: str) -> None:
        assert msg.headers is not None
        if status == "409" and "Consumer Deleted" in msg.headers.get("Description", ""):
            await self._ensure_consumer()
            return
        pending = int(msg.headers.get(PENDING_MESSAGES, "0") or 0)
        self._outstanding -= pending
        if _EXCEEDS_MAX_BYTES in msg.headers.get("Description", "") and pending == self._batch:
            # The next message alone is over the byte bound: take it by itself.
            await self._pull(1, bounded=False)
        elif status == "404" or self._outstanding <= self._batch // 2:
            self._outstanding = max(self._outstanding, 0)
            await self._pull(self._batch)

    async def _ensure_consumer(self) -> bool:
        """(Re)create the consumer; False while the stream does not exist or JetStream does
        not answer (then `next` tries again)."""
        try:
            await self._create_consumer()
        except nats.js.errors.NotFoundError:
            if self.first_seq is not None:
                # Whatever stream comes back under this name is a new one, all newer than us.
                self._vanished, self._new_only = True, False
            self._stream_missing()
            return False
        except _TRANSIENT:
            self._unanswered()
            return False
        return True

    def _stream_missing(self) -> None:
        self._warn_once(
            "missing",
            "JetStream stream %r does not exist yet; waiting for a worker with the plugin "
            "to create it",
        )

    def _unanswered(self) -> None:
        if clustered(self._nc):
            why = "a cluster electing a leader?"
        else:
            why = "the server busy, or its JetStream still starting?"
        self._warn_once(
            "unanswered",
            f"JetStream did not answer creating a consumer on stream %r ({why}); retrying",
        )

    def _warn_once(self, key: str, message: str) -> None:
        """Log `message` (naming the stream) once, until `key` is said to be over."""
        if key not in self._warned:
            log.warning("mistral_workflows: " + message, self._stream)
            self._warned.add(key)

    async def _create_consumer(self) -> None:
        """A new consumer, from the last message handed out, on a new inbox."""
        old, self._consumer = self._consumer, ""
        if old or self._sub is None:
            await self._listen()
        if old:
            # It may be gone already, which is why we are here.
            await _consumers.delete_consumer(self._nc, self._stream, old)
        name, info = await self._positioned_consumer()
        if self.first_seq is None:
            self.first_seq = start_of(info)
        self.caught_up = not info.num_pending
        self._consumer = name
        self._consumer_seq = 0
        self._outstanding = 0
        self._last_seen = time.monotonic()
        self._warned.discard("unanswered")
        await self._pull(self._batch)

    async def _positioned_consumer(self) -> tuple[str, ConsumerInfo]:
        """A consumer from our position; from the start, told to `on_gap`, if the stream is
        not the one the position came from."""
        name, info = await self._make(self._policy(), self._next_seq)
        try:
            replaced = await self._replaced(info)
        except BaseException:
            await _consumers.delete_consumer(self._nc, self._stream, name)
            raise
        if replaced:
            await _consumers.delete_consumer(self._nc, self._stream, name)
            name, info = await self._make(DeliverPolicy.ALL, None)
            assert self._next_seq is not None
            gap = Gap(self._next_seq, start_of(info), recreated=True)
            self._next_seq, self._new_only = None, False
            self._on_gap(gap)
        self._vanished = False
        return name, info

    async def _make(self, policy: DeliverPolicy, start: int | None) -> tuple[str, ConsumerInfo]:
        config = consumer_config(consumer_name(), self._filters, policy, start)
        return str(config.name), await _consumers.create_or_clean_up(self._nc, self._stream, config)

    async def _replaced(self, info: ConsumerInfo) -> bool:
        """Whether the stream is not the one our position came from: it vanished under us,
        or it ends before the position (sequences are never reused, so only a new stream
        can; a purged one keeps its last sequence)."""
        if self._next_seq is None:
            return False
        if self._vanished:
            return True
        if info.num_pending:
            return False  # It holds messages at or after the position.
        return (
            await _consumers.last_sequence(self._nc, self._stream, self._filters[0]) + 1
            < self._next_seq
        )

    async def _listen(self) -> None:
        """Listen on a fresh inbox, dropping the old one and whatever is queued on it."""
        if self._sub is not None:
            await self._sub.unsubscribe()
        self._inbox = self._nc.new_inbox()
        # No pending limit to overflow: the pull requests bound what can be buffered.
        self._sub = await self._nc.subscribe(
            self._inbox, pending_msgs_limit=0, pending_bytes_limit=0
        )

    def _policy(self) -> DeliverPolicy:
        # Once something was delivered, a new consumer always resumes after it.
        if self._next_seq is not None:
            return DeliverPolicy.BY_START_SEQUENCE
        return DeliverPolicy.NEW if self._new_only else DeliverPolicy.ALL

    async def _pull(self, n: int, bounded: bool = True) -> None:
        request = {
            "batch": n,
            "expires": int(_PULL_EXPIRES * 1e9),
            "idle_heartbeat": int(_HEARTBEAT * 1e9),
        }
        if bounded and self._max_bytes is not None:
            request["max_bytes"] = self._max_bytes
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{self._stream}.{self._consumer}"
        await self._nc.publish(subject, orjson.dumps(request), reply=self._inbox)
        self._outstanding += n


def clustered(nc: NATS) -> bool:
    """Whether the server `nc` is connected to belongs to a cluster (its INFO names one)."""
    # nats-py keeps the server's INFO without a public accessor.
    info = getattr(nc, "_server_info", None)
    return isinstance(info, dict) and bool(info.get("cluster"))
