"""The worker's relay for the events of workflow code: stored from the worker, in order,
across NATS outages, so that no workflow task waits for NATS.

Workflow code cannot do I/O: the library's local activity puts its events here and
returns (a lifecycle event after a short wait at most). The relay sends them in the order
they were put, in batches, and re-sends what was not stored, with the original message
ids, until JetStream has stored each event. An event still unstored after `give_up_after`
seconds (the stream's duplicate window) is given up and logged: sent later, it could be
stored twice, if an earlier copy was stored without the acknowledgement coming back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from mistral_workflows.core.encoding import MSG_ID
from mistral_workflows.core.errors import PublishError
from mistral_workflows.core.publisher import Publisher

__all__ = ["Relay"]

log = logging.getLogger("mistral_workflows")

_BATCH = 256  # events sent before waiting for their acknowledgements
_RETRY_PAUSE = 0.5  # seconds between a batch that was not stored and its next try
_MAX_BYTES = 64 * 1024 * 1024  # events held at most, in bytes


@dataclass(slots=True, eq=False)
class _Item:
    subject: str
    payload: bytes
    headers: dict[str, str]
    execution: str
    since: float
    # True once stored, False once given up; never an exception, which nobody may read.
    done: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Relay:
    """Stores the events handed over by workflow code, in order, retrying across outages.

    Args:
        publisher: The worker's publisher.
        give_up_after: Seconds after which an event that could not be stored is given up
            (and logged); the stream's duplicate window, so that a re-sent event is never
            stored twice.
        max_bytes: The events held at most, in bytes; beyond it, `put` refuses new ones.
    """

    def __init__(
        self, publisher: Publisher, *, give_up_after: float, max_bytes: int = _MAX_BYTES
    ) -> None:
        self.publisher = publisher
        self._give_up_after = give_up_after
        self._max_bytes = max_bytes
        self._queue: deque[_Item] = deque()
        self._by_id: dict[str, _Item] = {}
        self._last: dict[str, _Item] = {}  # the last item put of each execution
        self._bytes = 0
        self._task: asyncio.Task[None] | None = None
        self._failing: PublishError | None = None  # why the last try did not store its batch
        self._closed = False

    def __len__(self) -> int:
        """Events put and not stored (nor given up) yet."""
        return len(self._queue)

    def put(
        self, subject: str, payload: bytes, headers: dict[str, str], execution: str
    ) -> asyncio.Future[bool]:
        """Queue one encoded event of `execution` (a workflow id); the future is True once
        it is stored, False if it was given up. The same message id again (a workflow task
        that ran again) gets the future of the event already queued.

        Raises:
            PublishError: the worker is stopping, or the relay holds `max_bytes` already.
        """
        msg_id = headers.get(MSG_ID, "")
        queued = self._by_id.get(msg_id) if msg_id else None
        if queued is not None:
            return queued.done
        if self._closed:
            raise PublishError("the worker is stopping: no more events of workflow code")
        if self._queue and self._bytes + len(payload) > self._max_bytes:
            raise PublishError(
                f"{len(self._queue)} events of workflow code ({self._bytes} bytes) are "
                f"waiting to be stored ({self._where()}; last error: {self._failing}); "
                "the worker holds no more: this one was refused"
            )
        item = _Item(subject, payload, headers, execution, time.monotonic())
        self._queue.append(item)
        if msg_id:
            self._by_id[msg_id] = item
        self._last[execution] = item
        self._bytes += len(payload)
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        return item.done

    async def stored_before(self, execution: str, timeout: float) -> None:
        """Wait until every event of `execution` put so far is stored or given up, at most
        `timeout` seconds: what `execution`'s activities send then comes after them."""
        item = self._last.get(execution)
        if item is not None and not item.done.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(item.done), timeout)

    async def close(self, timeout: float) -> None:
        """Store what is queued, waiting `timeout` seconds at most; what is left then is
        given up and logged."""
        self._closed = True
        task = self._task
        if task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), timeout)
        if self._queue:
            log.error(
                "mistral_workflows: %d event(s) of workflow code were not stored before "
                "the worker stopped (%s; last error: %s)",
                len(self._queue),
                self._where(),
                self._failing,
            )
            running = self._task
            if running is not None:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
            while self._queue:
                self._finish(False)

    async def _run(self) -> None:
        try:
            while self._queue:
                batch = list(itertools.islice(self._queue, _BATCH))
                if await self._store(batch):
                    for _ in batch:
                        self._finish(True)
                else:
                    self._give_up_expired()
                    await asyncio.sleep(_RETRY_PAUSE)
        finally:
            self._task = None

    async def _store(self, batch: list[_Item]) -> bool:
        """Send `batch` in order and wait until JetStream stored all of it."""
        emitter = self.publisher.emitter(None, None, strict=True)
        try:
            for item in batch:
                await emitter.send(item.subject, item.payload, item.headers)
            await emitter.flush()
        except PublishError as e:
            emitter.discard()
            if self._failing is None:
                log.warning(
                    "mistral_workflows: %d event(s) of workflow code are waiting for NATS; "
                    "re-sending them in order until stored (%s)",
                    len(self._queue),
                    e,
                )
            self._failing = e
            return False
        if self._failing is not None:
            log.warning("mistral_workflows: events of workflow code are being stored again")
            self._failing = None
        return True

    def _give_up_expired(self) -> None:
        deadline = time.monotonic() - self._give_up_after
        lost = 0
        while self._queue and self._queue[0].since < deadline:
            self._finish(False)
            lost += 1
        if lost:
            log.error(
                "mistral_workflows: %d event(s) of workflow code given up, not stored within "
                "%gs (%s; last error: %s); sent later, they could be stored twice",
                lost,
                self._give_up_after,
                self._where(),
                self._failing,
            )

    def _finish(self, stored: bool) -> None:
        """The oldest event is stored (or given up): forget it."""
        item = self._queue.popleft()
        self._bytes -= len(item.payload)
        msg_id = item.headers.get(MSG_ID, "")
        if self._by_id.get(msg_id) is item:
            del self._by_id[msg_id]
        if self._last.get(item.execution) is item:
            del self._last[item.execution]
        if not item.done.done():
            item.done.set_result(stored)

    def _where(self) -> str:
        return f"stream {self.publisher.stream_name!r} at {self.publisher.url}"
