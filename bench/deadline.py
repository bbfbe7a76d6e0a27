"""The delivery deadline: a producer that blocks the event loop between updates (CPU-bound
work, a blocking SDK) still gets every update to consumers within about `max_delay`.

The producer does 10 ms of blocking work before each update and never yields; a consumer
on its own thread and event loop notes when each update's change arrives.
"""

from __future__ import annotations

import asyncio
import threading
import time

from bench._common import Row, Servers, direct_emitter, percentile
from mistral_workflows import subscribe
from mistral_workflows.core.events import EventType
from mistral_workflows.core.task import Task

BLOCK = 0.01  # seconds of blocking work before each update
STREAM = "deadline"


def _consume(url: str, exec_id: str, arrivals: dict[int, int], ready: threading.Event) -> None:
    """Note when the update count `done` first reaches each value (on this thread)."""

    async def read() -> None:
        reader = subscribe(url, workflow_exec_id=exec_id, stream=STREAM, idle_timeout=30)
        ready.set()
        async for event in reader:
            now = time.time_ns()
            data = event.data
            if data.event_type == EventType.CUSTOM_TASK_COMPLETED:
                return
            if data.event_type == EventType.CUSTOM_TASK_IN_PROGRESS:
                for op in data.attributes.payload.value:
                    if op["path"] == "/done":
                        arrivals.setdefault(op["value"], now)

    asyncio.run(read())


async def blocking_producer(url: str, n: int) -> tuple[list[float], int, float]:
    """Delays (ms) from each update to its arrival, the IN_PROGRESS events, max_delay (ms)."""
    exec_id = f"deadline-{time.time_ns()}"
    arrivals: dict[int, int] = {}
    ready = threading.Event()
    consumer = threading.Thread(target=_consume, args=(url, exec_id, arrivals, ready))
    consumer.start()
    ready.wait(10)
    await asyncio.sleep(0.5)  # the consumer's subscription is in place
    made: list[int] = []
    async with direct_emitter(url, exec_id) as emitter:
        max_delay = emitter.publisher.max_delay
        async with Task(type=STREAM, state={"done": 0}) as task:
            for i in range(n):
                time.sleep(BLOCK)  # noqa: ASYNC251 - blocking work: the loop does not turn
                made.append(time.time_ns())
                await task.update_state({"done": i + 1})
        events = task._writer._seq - 2
    await asyncio.to_thread(consumer.join, 60)
    # Folded replaces of `done` carry the last value: update i arrived with the first
    # event whose value is at least i + 1.
    delays, first = [], None
    for i in reversed(range(n)):
        at = arrivals.get(i + 1)
        first = at if at is not None and (first is None or at < first) else first
        assert first is not None, f"update {i + 1} never arrived"
        delays.append((first - made[i]) / 1e6)
    return delays, events, max_delay * 1e3


async def run(servers: Servers, n: int) -> list[Row]:
    delays, events, max_delay = await blocking_producer(servers.nats_url, n)
    p99, worst = percentile(delays, 0.99), max(delays)
    return [
        Row("deadline", f"blocking producer: {n} updates, {BLOCK * 1e3:g} ms apart", events, "ev"),
        Row(
            "deadline",
            f"  update-to-consumer p99 (max_delay {max_delay:g} ms)",
            p99,
            "ms",
            f"<= {max_delay:g}",
            p99 <= max_delay,
        ),
        Row("deadline", "  update-to-consumer max", worst, "ms"),
    ]
