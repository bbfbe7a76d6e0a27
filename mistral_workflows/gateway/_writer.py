"""How a viewer's SSE response writes: at once, from whoever hands it a batch, while nothing
else is being written for it; through its byte-bounded buffer otherwise.

A shared read hands the same batch to a thousand viewers in one go. Waking a thousand
response tasks to write it costs more than the writes themselves, so while a viewer's
response waits idle for something to send, the batch is written right away with the
response's own ASGI `send` (middleware included), without a task switch. Such a write
normally completes at once; if it has to wait (the client's socket buffer is full), the rest
of it is handed to the response's task, which finishes it before anything else, and the
next batches queue in the viewer's buffer (bounded, as always) meanwhile. Order is kept:
nothing is written at once while anything waits in the buffer or is being written.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Generator
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from mistral_workflows.gateway._batch import Batch
from mistral_workflows.gateway._metrics import METER, Meter
from mistral_workflows.gateway._outbox import Outbox

__all__ = ["END", "Writer", "WriterStream"]


class _End:
    """The last item of a viewer's buffer."""


END = _End()


class _Rest:
    """The part of a write that had to wait: awaited by the response's task."""

    def __init__(self, steps: Generator[Any, None, Any], waiting: Any) -> None:
        self._steps = steps
        self._waiting = waiting

    def __await__(self) -> Generator[Any, None, None]:
        # What the write yielded is what asyncio's tasks are given by any await: a future
        # to wait for (or None, to run again soon). Hand it on, then carry on the write.
        waiting = self._waiting
        while True:
            try:
                yield waiting
            except BaseException as e:  # Cancelled while waiting: the write is told.
                try:
                    waiting = self._steps.throw(e)
                except StopIteration:
                    return
                continue
            try:
                waiting = self._steps.send(None)
            except StopIteration:
                return


class _Failed:
    """A write made at once failed: the response's task raises it."""

    def __init__(self, error: Exception) -> None:
        self.error = error


Item = Batch | bytes | _End | _Rest | _Failed


class Writer:
    """Writes one viewer's messages: `batch` at once when idle, else `queue` (see the
    module's docstring)."""

    def __init__(self, outbox: Outbox[Item]) -> None:
        self.outbox = outbox
        self.quiet = False
        """Nothing was written since the last keep-alive tick."""
        self._idle = False
        self._send: Send | None = None
        self._meter: Meter | None = None
        self._context: contextvars.Context | None = None

    def room(self, size: int, alone: bool) -> bool:
        """Whether the buffer has room for `size` more bytes (see `Outbox.room`)."""
        return self.outbox.room(size, alone)

    def batch(self, batch: Batch) -> None:
        """Write `batch` now if nothing else is being written, else queue it."""
        if not self._idle:
            self.outbox.push(batch, len(batch.data))
            return
        assert self._send is not None and self._context is not None
        if self._meter is not None:
            self._meter.delivered(batch)
        self.quiet = False
        message = {"type": "http.response.body", "body": batch.data, "more_body": True}
        steps = self._send(message).__await__()
        try:
            waiting = self._context.run(steps.send, None)
        except StopIteration:
            return
        except Exception as e:
            self._idle = False
            self.outbox.push(_Failed(e), 0)
            return
        self._idle = False
        self.outbox.push(_Rest(steps, waiting), 0)

    def queue(self, item: bytes | _End, size: int) -> None:
        """Queue `item` (sent in order after what was given before)."""
        self._idle = False
        self.outbox.push(item, size)

    async def put(self, batch: Batch) -> None:
        """Queue `batch` once the buffer has room for it."""
        self._idle = False
        await self.outbox.put(batch, len(batch.data))

    async def run(self, send: Send, meter: Meter | None) -> None:
        """Write what is queued, and let `batch` write at once while nothing is, until
        `END` comes."""
        self._send, self._meter = send, meter
        self._context = contextvars.copy_context()
        try:
            await self._run()
        finally:
            self._idle = False  # However it ends (cancelled while idle included).

    async def _run(self) -> None:
        outbox, meter = self.outbox, self._meter
        while True:
            if not outbox:
                self._idle = True
            items = await outbox.drain()
            self._idle = False
            parts: list[bytes] = []
            for item in items:
                if type(item) is Batch:
                    parts.append(item.data)
                    if meter is not None:
                        meter.delivered(item)
                elif isinstance(item, bytes):
                    parts.append(item)
                    if meter is not None:
                        meter.scan(item)
                else:
                    await self._write(parts)
                    parts = []
                    if isinstance(item, _Rest):
                        await item
                    elif isinstance(item, _Failed):
                        raise item.error
                    else:
                        return
            await self._write(parts)

    async def _write(self, parts: list[bytes]) -> None:
        if parts:
            assert self._send is not None
            self.quiet = False
            body = parts[0] if len(parts) == 1 else b"".join(parts)
            await self._send({"type": "http.response.body", "body": body, "more_body": True})


class WriterStream(Response):
    """The SSE response of a viewer: `start` begins the viewer's reading, `stop` ends it
    however the response ends (a disconnect included), and its writer writes.

    It counts the events it sends for the gateway's metrics itself, from what each batch
    holds (the metrics middleware then reads nothing of its body)."""

    media_type = "text/event-stream"

    def __init__(
        self,
        writer: Writer,
        start: Callable[[], None],
        stop: Callable[[], Any],
        headers: dict[str, str],
    ) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers(headers)
        self._writer = writer
        self._start = start
        self._stop = stop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        meter: Meter | None = scope.get(METER)
        if meter is not None:
            meter.claim()
        self._start()
        watcher = asyncio.create_task(self._watch(receive))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await send(
                {"type": "http.response.body", "body": b": connected\n\n", "more_body": True}
            )
            await self._writer.run(send, meter)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            await self._stop()

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self._writer.queue(END, 0)
