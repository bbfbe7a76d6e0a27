"""A viewer's writer: a batch handed to an idle response is written at once, without its
task; a write that has to wait is finished by the response's task before anything else,
so that order is kept and nothing is lost."""

from __future__ import annotations

import asyncio
from typing import Any

from mistral_workflows.gateway._batch import Batch
from mistral_workflows.gateway._outbox import Outbox, ReadAhead
from mistral_workflows.gateway._writer import END, Item, Writer


class _Client:
    """An ASGI `send` whose writes of `slow` wait until `release`, like a full socket."""

    def __init__(self, slow: bytes) -> None:
        self.slow = slow
        self.sent: list[bytes] = []
        self.cancelled = False
        self.gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def send(self, message: dict[str, Any]) -> None:
        body = message["body"]
        if body == self.slow:
            try:
                await self.gate
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        self.sent.append(body)


def _writer() -> Writer:
    outbox: Outbox[Item] = Outbox(ReadAhead(1 << 20, 1 << 30))
    return Writer(outbox)


def _batch(data: bytes, seq: int) -> Batch:
    return Batch.one(data, seq, 0)


async def test_a_write_that_waits_is_finished_first_and_the_next_ones_follow_in_order() -> None:
    client = _Client(slow=b"second")
    writer = _writer()
    running = asyncio.create_task(writer.run(client.send, None))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    writer.batch(_batch(b"first", 1))
    assert client.sent == [b"first"]  # Written at once, by the caller: no task ran.
    writer.batch(_batch(b"second", 2))  # Has to wait: handed to the response's task.
    writer.batch(_batch(b"third", 3))
    writer.queue(b": note\n\n", 9)
    await asyncio.sleep(0.05)
    # Control: nothing overtook the write that waits.
    assert client.sent == [b"first"]
    client.gate.set_result(None)
    for _ in range(100):
        if len(client.sent) == 3:
            break
        await asyncio.sleep(0.01)
    assert client.sent == [b"first", b"second", b"third: note\n\n"]
    writer.batch(_batch(b"fourth", 4))  # Idle again: at once.
    assert client.sent[-1] == b"fourth"
    writer.queue(END, 0)
    await asyncio.wait_for(running, 5)


async def test_a_response_cancelled_while_a_write_waits_cancels_that_write() -> None:
    client = _Client(slow=b"first")
    writer = _writer()
    running = asyncio.create_task(writer.run(client.send, None))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    writer.batch(_batch(b"first", 1))
    await asyncio.sleep(0.01)
    running.cancel()
    done, _ = await asyncio.wait({running}, timeout=5)
    assert done and running.cancelled()
    assert client.cancelled
    assert client.sent == []


async def test_a_response_that_ended_while_idle_writes_nothing_more() -> None:
    client = _Client(slow=b"")
    writer = _writer()
    running = asyncio.create_task(writer.run(client.send, None))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    writer.batch(_batch(b"first", 1))
    assert client.sent == [b"first"]  # Control: while it runs, a batch is written at once.
    running.cancel()
    await asyncio.wait({running}, timeout=5)
    writer.batch(_batch(b"second", 2))
    assert client.sent == [b"first"]
