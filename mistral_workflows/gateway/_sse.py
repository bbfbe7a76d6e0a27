"""Server-Sent Events out of `subscribe`: the message shape of the official events API.

Each event is ``event: workflow.event``, ``id: <broker_sequence>`` and ``data: <envelope
JSON>``; a failure after the response began is ``event: error`` with ``{"error",
"reason"}``. A start that expired is told in a comment; a stream that was recreated (its
sequences restarted) is ``event: gap`` with ``{"error": "stream_recreated", "reason"}`` and,
as its ``id:``, the sequence before the new stream's first one, so that a client resuming
by Last-Event-ID starts over at the new stream. Comments keep idle connections open through
proxies. The first message carries a ``retry:`` hint for browsers' `EventSource`, which
then reconnects with a `Last-Event-ID` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass

from mistral_workflows.consumer import Gap
from mistral_workflows.core.errors import MistralWorkflowsError
from mistral_workflows.core.events import StreamEvent

__all__ = ["RETRY_MS", "EventPump", "error_message", "event_message", "gap_message"]

log = logging.getLogger("mistral_workflows.gateway")

RETRY_MS = 2000
"""How long a browser waits before reconnecting (the `retry:` hint)."""

# Events read ahead of a slow client: beyond this, reading from NATS waits for the client.
_BUFFER = 256


def event_message(event: StreamEvent, retry: bool = False) -> bytes:
    """One SSE message for an event (JSON holds no raw newline: one `data:` line)."""
    head = f"retry: {RETRY_MS}\n" if retry else ""
    body = event.model_dump_json()
    return f"{head}event: workflow.event\nid: {event.broker_sequence}\ndata: {body}\n\n".encode()


def error_message(error: str, reason: str, retry: bool = False) -> bytes:
    """The SSE message that ends a stream that failed after its response began."""
    head = f"retry: {RETRY_MS}\n" if retry else ""
    body = json.dumps({"error": error, "reason": reason})
    return f"{head}event: error\ndata: {body}\n\n".encode()


def gap_message(gap: Gap) -> bytes:
    """The SSE message that tells a client its stream was recreated (sequences restarted);
    its id moves the client's Last-Event-ID to just before the new stream's first event."""
    body = json.dumps({"error": "stream_recreated", "reason": str(gap)})
    return f"event: gap\nid: {gap.first_available - 1}\ndata: {body}\n\n".encode()


@dataclass(frozen=True, slots=True)
class _End:
    error: BaseException | None


class EventPump:
    """Reads events in a task of its own and hands them to the response as SSE messages.

    The reading task runs ahead of the client by at most `_BUFFER` events; when the
    response stops (the client went away, or the server shuts down), the task is cancelled,
    which deletes the JetStream consumer.
    """

    def __init__(self, keep: Callable[[StreamEvent], bool], keepalive: float) -> None:
        self._keep = keep
        self._keepalive = keepalive
        self._queue: asyncio.Queue[StreamEvent | str | bytes | _End] = asyncio.Queue(_BUFFER)
        # Recreation notices that found the queue full: sent before anything read after them.
        self._late: deque[bytes] = deque()

    def on_gap(self, gap: Gap) -> None:
        """Tell the client that the start it asked for has expired (in a comment), or that
        the stream was recreated (a `gap` message, which must not be lost)."""
        log.info("mistral_workflows.gateway: %s", gap)
        if not gap.recreated:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(f"gap: {gap}")
            return
        self._late.append(gap_message(gap))
        while self._late and not self._queue.full():
            self._queue.put_nowait(self._late.popleft())

    async def body(self, source: AsyncGenerator[StreamEvent, None]) -> AsyncIterator[bytes]:
        """The response body: a first comment, then messages and keep-alive comments."""
        reading = asyncio.create_task(self._read(source))
        try:
            yield b": connected\n\n"
            first = True
            while True:
                if self._queue.empty() and self._late:
                    yield self._late.popleft()
                    continue
                try:
                    item = await asyncio.wait_for(self._queue.get(), self._keepalive)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if isinstance(item, bytes):
                    yield item
                elif isinstance(item, str):
                    yield f": {item}\n\n".encode()
                elif isinstance(item, _End):
                    if item.error is not None:
                        yield _failure(item.error, first)
                    return
                else:
                    yield event_message(item, retry=first)
                    first = False
        finally:
            # Not awaited: the response may itself be cancelled; the task cleans up alone.
            reading.cancel()
            _background.add(reading)
            reading.add_done_callback(_background.discard)

    async def _read(self, source: AsyncGenerator[StreamEvent, None]) -> None:
        try:
            async for event in source:
                while self._late:
                    await self._queue.put(self._late.popleft())
                if self._keep(event):
                    await self._queue.put(event)
            await self._queue.put(_End(None))
        except MistralWorkflowsError as e:
            await self._queue.put(_End(e))
        except Exception as e:
            log.exception("mistral_workflows.gateway: reading events failed")
            await self._queue.put(_End(e))
        finally:
            await source.aclose()


_background: set[asyncio.Task[None]] = set()


def _failure(error: BaseException, first: bool) -> bytes:
    if isinstance(error, MistralWorkflowsError):
        return error_message(type(error).__name__, str(error), retry=first)
    return error_message("internal_error", "reading events failed; see the gateway's log", first)
