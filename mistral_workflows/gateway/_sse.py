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
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from mistral_workflows.consumer import Gap
from mistral_workflows.core.errors import MistralWorkflowsError
from mistral_workflows.core.events import StreamEvent
from mistral_workflows.gateway._outbox import Outbox, ReadAhead

__all__ = [
    "RETRY_MS",
    "EventPump",
    "EventStreamResponse",
    "error_message",
    "event_message",
    "gap_message",
]

log = logging.getLogger("mistral_workflows.gateway")

# Seconds between cancellations of a reading task that has not begun to close.
_RECANCEL = 0.5

RETRY_MS = 2000
"""How long a browser waits before reconnecting (the `retry:` hint)."""


def event_message(event: StreamEvent, retry: bool = False) -> bytes:
    """One SSE message for an event (JSON holds no raw newline: one `data:` line).

    A snapshot (late join) has no sequence, hence no `id:`: a client that reconnects before
    the first event after the snapshots starts over with them.

    The event's trace context, when it has one, goes in `traceparent:` and `tracestate:`
    fields of the message: clients that know them can link their spans to the producer's,
    and the SSE rules make every other client (a browser's `EventSource`) ignore them.
    """
    head = f"retry: {RETRY_MS}\n" if retry else ""
    seq = event.broker_sequence
    body = event.model_dump_json()
    position = "" if seq is None else f"id: {seq}\n"
    trace = event.trace_context
    fields = "".join(f"{k}: {v}\n" for k, v in trace.items() if _one_line(v)) if trace else ""
    return f"{head}event: workflow.event\n{position}{fields}data: {body}\n\n".encode()


def _one_line(value: str) -> bool:
    """A header value that cannot break the SSE framing (no line break)."""
    return "\n" not in value and "\r" not in value


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

    The reading task runs ahead of the client by at most the bytes `bounds` allow; the
    response (`EventStreamResponse`) starts it and, however the response ends (the client
    went away, reset its connection, or the server shuts down), cancels it and waits for it
    to end, which deletes the JetStream consumer.
    """

    def __init__(
        self, keep: Callable[[StreamEvent], bool], keepalive: float, bounds: ReadAhead
    ) -> None:
        self._keep = keep
        self._keepalive = keepalive
        self._outbox: Outbox[bytes | _End] = Outbox(bounds)
        self._reading: asyncio.Task[None] | None = None
        self._stopping = False
        self._closing = False

    def on_gap(self, gap: Gap) -> None:
        """Tell the client that the start it asked for has expired (in a comment), or that
        the stream was recreated (a `gap` message, which must not be lost)."""
        log.info("mistral_workflows.gateway: %s", gap)
        # In the outbox like events, in order: after what was read before it, before what
        # is read after it, and never dropped.
        message = gap_message(gap) if gap.recreated else f": gap: {gap}\n\n".encode()
        self._outbox.push(message, len(message))

    def start(self, source: AsyncGenerator[StreamEvent, None]) -> None:
        """Start reading `source` ahead of the client."""
        self._reading = asyncio.create_task(self._read(source))

    async def stop(self) -> None:
        """End the reading and wait until its consumer is deleted; drop what waits."""
        self._stopping = True
        self._outbox.clear()  # Wakes the reading if it waits for room.
        reading = self._reading
        if reading is None:
            return
        # Kept alive should the response itself be cancelled while waiting here.
        _background.add(reading)
        reading.add_done_callback(_background.discard)
        while not reading.done():
            # Python 3.11's `wait_for` (nats-py's `next_msg`) loses a cancellation that
            # comes as its message arrives: cancel again until the reading closes its source.
            if not self._closing:
                reading.cancel()
            await asyncio.wait({reading}, timeout=_RECANCEL)
        self._outbox.clear()

    async def body(self) -> AsyncIterator[bytes]:
        """The response body: a first comment, then messages and keep-alive comments."""
        yield b": connected\n\n"
        while True:
            try:
                item = await asyncio.wait_for(self._outbox.get(), self._keepalive)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if isinstance(item, _End):
                return
            yield item

    async def _read(self, source: AsyncGenerator[StreamEvent, None]) -> None:
        first = True
        try:
            async for event in source:
                if self._stopping:
                    break
                if self._keep(event):
                    message = event_message(event, retry=first)
                    first = False
                    await self._outbox.put(message, len(message))
        except MistralWorkflowsError as e:
            self._fail(e, first)
        except Exception as e:
            log.exception("mistral_workflows.gateway: reading events failed")
            self._fail(e, first)
        finally:
            self._closing = True
            await source.aclose()
        self._outbox.push(_End(None), 0)

    def _fail(self, error: BaseException, first: bool) -> None:
        message = _failure(error, first)
        self._outbox.push(message, len(message))


class EventStreamResponse(StreamingResponse):
    """The SSE response of one stream: it owns its pump's reading task.

    Cleaning up here, not in the body generator, is what makes every disconnect end the
    reading: Starlette cancels the response while it waits for the client to drain, and
    a generator suspended there is never closed.
    """

    def __init__(
        self,
        pump: EventPump,
        source: AsyncGenerator[StreamEvent, None],
        headers: Mapping[str, str],
    ) -> None:
        super().__init__(pump.body(), media_type="text/event-stream", headers=headers)
        self._pump = pump
        self._source = source

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream, then end the reading whatever happened."""
        self._pump.start(self._source)
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._pump.stop()


_background: set[asyncio.Task[None]] = set()


def _failure(error: BaseException, first: bool) -> bytes:
    if isinstance(error, MistralWorkflowsError):
        return error_message(type(error).__name__, str(error), retry=first)
    return error_message("internal_error", "reading events failed; see the gateway's log", first)
