"""The delivery deadline: updates reach the broker within `max_delay` of being made, whether
the activity yields to the event loop between them or not; folding only saves envelopes."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import timedelta
from typing import Any

import nats
import pytest

import mistral_workflows as workflows
from mistral_workflows import ConfigurationError, MistralWorkflowsPlugin
from mistral_workflows.core import subjects
from mistral_workflows.core.events import EventType
from mistral_workflows.core.task import Task
from tests.support import plugged_client, rebuilt, running_worker, task_events, unique
from tests.workflows import Call, RunActivity

UPDATES = 100
BLOCK = 0.01  # seconds of blocking work before each update: 1 s of work in all


@workflows.activity()
async def blocking_updates(n: int, block: float, yields: bool) -> list[int]:
    """n updates after `block` seconds of blocking work each (the event loop does not turn
    meanwhile); `yields` lets the loop turn between updates. Returns when each update was
    made (Unix ns)."""
    made = []
    async with Task(type="deadline", state={"done": 0}) as task:
        for i in range(n):
            if yields:
                await asyncio.sleep(0)
            time.sleep(block)  # noqa: ASYNC251 - CPU-bound or blocking work
            made.append(time.time_ns())
            await task.update_state({"done": i + 1})
    return made


async def run(
    temporal_address: str, nats_url: str, task_queue: str, call: Call, **plugin: Any
) -> tuple[list[int], list[Any]]:
    """Run `call` on a worker whose plugin has the `plugin` settings; return its result and
    its task events."""
    client = await plugged_client(temporal_address, nats_url, **plugin)
    wid = unique(call.activity)
    async with running_worker(client, task_queue, [RunActivity], [blocking_updates]):
        made = await client.execute_workflow(RunActivity.run, call, id=wid, task_queue=task_queue)
    return made, await task_events(nats_url, workflow_exec_id=wid)


async def stored_at(nats_url: str, events: list[Any]) -> list[int]:
    """When JetStream stored each IN_PROGRESS event of `events` (Unix ns), in order."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    at = []
    try:
        for event in progress(events):
            msg = await js.get_msg(subjects.DEFAULT_STREAM_NAME, event.broker_sequence)
            assert msg.time is not None
            at.append(int(msg.time.timestamp() * 1e9))
    finally:
        await nc.close()
    return at


def progress(events: list[Any]) -> list[Any]:
    return [e for e in events if e.data.event_type == EventType.CUSTOM_TASK_IN_PROGRESS]


def check_spread(made: list[int], stored: list[int], max_delay: float) -> None:
    """The events went out while the producer worked, as many as `max_delay` allows.

    Each event holds updates made within `max_delay` plus one interval between updates,
    so there are at least (time of work) / (max_delay + 2 intervals) events; and at least
    half of them were stored before the last update was made.
    """
    span = made[-1] - made[0]
    gap = max(b - a for a, b in itertools.pairwise(made))
    fewest = span // (int(max_delay * 1e9) + 2 * gap)
    assert len(stored) >= fewest, f"{len(stored)} events for {len(made)} updates"
    early = sum(at < made[-1] for at in stored)
    assert early * 2 >= len(stored), f"only {early} of {len(stored)} events stored early"


async def test_a_producer_that_never_yields_streams_while_it_works(
    temporal_address, nats_url, task_queue
):
    """1 s of blocking work between updates, never yielding: the events are stored all
    along that second, not at the end, holding several updates each (as `max_delay` allows),
    and the state rebuilds exactly."""
    max_delay = 0.1
    made, events = await run(
        temporal_address,
        nats_url,
        task_queue,
        Call("blocking_updates", [UPDATES, BLOCK, False]),
        max_delay=timedelta(seconds=max_delay),
    )
    (task,) = rebuilt(events)
    assert task.status == "completed" and task.state == {"done": UPDATES}
    stored = await stored_at(nats_url, events)
    check_spread(made, stored, max_delay)
    # Folded: updates 10 ms apart, held up to 100 ms, are far fewer events than updates.
    assert len(stored) <= UPDATES // 2


async def test_holding_updates_until_the_end_is_seen(temporal_address, nats_url, task_queue):
    """Control: with a deadline longer than the work, every update waits for the end, and
    the check of the test above fails."""
    made, events = await run(
        temporal_address,
        nats_url,
        task_queue,
        Call("blocking_updates", [UPDATES, BLOCK, False]),
        max_delay=3600,
    )
    (task,) = rebuilt(events)
    assert task.state == {"done": UPDATES}
    stored = await stored_at(nats_url, events)
    with pytest.raises(AssertionError, match="events for 100 updates"):  # one, at the end
        check_spread(made, stored, 0.1)


async def test_a_producer_that_yields_gets_an_event_per_update(
    temporal_address, nats_url, task_queue
):
    """The same work with a yield between updates, by default (25 ms): one IN_PROGRESS
    event per update, stored while the producer works."""
    n = UPDATES // 2
    made, events = await run(
        temporal_address, nats_url, task_queue, Call("blocking_updates", [n, BLOCK, True])
    )
    assert [e.data.attributes.payload.value for e in progress(events)] == [
        [{"op": "replace", "path": "/done", "value": i + 1}] for i in range(n)
    ]
    check_spread(made, await stored_at(nats_url, events), 0.025)


async def test_max_delay_zero_sends_an_event_per_update(temporal_address, nats_url, task_queue):
    """max_delay=0: one event per update even when the producer never yields."""
    n = UPDATES // 2
    _, events = await run(
        temporal_address,
        nats_url,
        task_queue,
        Call("blocking_updates", [n, BLOCK, False]),
        max_delay=0,
    )
    assert len(progress(events)) == n
    (task,) = rebuilt(events)
    assert task.state == {"done": n}


@pytest.mark.parametrize("bad", [-0.01, float("nan"), float("inf"), "25ms", True, None])
def test_bad_max_delay_is_refused(bad):
    with pytest.raises(ConfigurationError, match="max_delay must be a timedelta or a number"):
        MistralWorkflowsPlugin(max_delay=bad)
