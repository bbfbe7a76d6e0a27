"""Load and overload against real servers: 1,000 activities streaming at once on one
worker, with and without a nats-server crash; an outage during which activities send ten
times what nats-py's reconnect buffer holds; a consumer far slower than its producer.

Each fan-out's first attempts start their task, then wait at a gate until every one of
them runs (so the concurrency is real, not a matter of scheduling) and the test opens
the gate, possibly after killing the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import nats
import orjson
import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker

import mistral_workflows as workflows
from mistral_workflows import MistralWorkflowsPlugin, StreamEvent, TaskStates, subscribe
from mistral_workflows.consumer._reader import Reader
from mistral_workflows.core import subjects
from mistral_workflows.core.events import CUSTOM_TASK_EVENT_TYPES, EventType
from mistral_workflows.core.task import Task
from mistral_workflows.dev import NatsServer
from tests.support import unique

GATE_TIMEOUT = 60.0

# --- the producers --------------------------------------------------------------------------


class Crowd:
    """The attempts of one fan-out: how many run now, the most that ran at once, and the
    gate where first attempts wait until the test lets them stream."""

    def __init__(self) -> None:
        self.reset(0)

    def reset(self, size: int, mark: int = 0) -> None:
        self.size, self.running, self.peak, self.updates = size, 0, 0, 0
        self.full = asyncio.Event()
        self.go = asyncio.Event()
        self.mark = mark
        self.marked = asyncio.Event()

    def enter(self) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        if self.running >= self.size:
            self.full.set()

    def leave(self) -> None:
        self.running -= 1

    def updated(self) -> None:
        self.updates += 1
        if self.updates >= self.mark:
            self.marked.set()


CROWD = Crowd()


@dataclass
class Load:
    """What each activity of a fan-out streams: `updates` tokens of `token_bytes`."""

    updates: int
    token_bytes: int = 8
    pause: float = 0.01


@dataclass
class FanOut:
    """`count` calls of `activity`, all at once."""

    activity: str
    count: int
    load: Load
    attempts: int = 6


def token(attempt: int, i: int, size: int) -> str:
    """Token `i` of an attempt, padded to `size` characters."""
    head = f"{attempt}-{i}-"
    return head + "x" * max(size - len(head), 0)


def digest(state: Any) -> str:
    """A short fingerprint of a JSON state."""
    return hashlib.sha256(orjson.dumps(state, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def stream(load: Load) -> dict[str, Any]:
    """Start a task, wait at the gate (first attempts only), then stream the tokens."""
    attempt = activity.info().attempt
    CROWD.enter()
    try:
        async with Task(type="load", state={"tokens": []}) as task:
            if attempt == 1:
                await asyncio.wait_for(CROWD.go.wait(), GATE_TIMEOUT)
            for i in range(load.updates):
                await asyncio.sleep(load.pause)  # each update is its own event
                tokens = task.state["tokens"]
                await task.update_state({"tokens": [*tokens, token(attempt, i, load.token_bytes)]})
                CROWD.updated()
    finally:
        CROWD.leave()
    return task.state


@workflows.activity()
async def streams_tokens(load: Load) -> dict[str, Any]:
    """Streams the tokens; returns the task's final state."""
    return await stream(load)


@workflows.activity()
async def streams_large_tokens(load: Load) -> str:
    """Streams the tokens; returns a digest of the final state (too large for Temporal)."""
    return digest(await stream(load))


@workflows.activity()
async def counts_to(n: int) -> int:
    """Streams a counter from 1 to `n`, one event per update."""
    async with Task(type="counter", state={"n": 0}) as task:
        for i in range(1, n + 1):
            await asyncio.sleep(0)  # each update is its own event
            await task.update_state({"n": i})
    return int(task.state["n"])


@workflow.defn
class FanOutWorkflow:
    """Runs the plan's activity `count` times at once; returns the results by activity id."""

    @workflow.run
    async def run(self, plan: FanOut) -> dict[str, Any]:
        retry = RetryPolicy(
            initial_interval=timedelta(milliseconds=200),
            backoff_coefficient=1.0,
            maximum_attempts=plan.attempts,
        )
        ids = [f"load-{i}" for i in range(plan.count)]
        calls = [
            workflow.execute_activity(
                plan.activity,
                plan.load,
                activity_id=activity_id,
                start_to_close_timeout=timedelta(seconds=90),
                retry_policy=retry,
            )
            for activity_id in ids
        ]
        return dict(zip(ids, await asyncio.gather(*calls), strict=True))


@workflow.defn
class CountWorkflow:
    """Runs `counts_to` once."""

    @workflow.run
    async def run(self, n: int) -> int:
        return await workflow.execute_activity(
            counts_to, n, start_to_close_timeout=timedelta(seconds=90)
        )


@dataclass
class Rig:
    """A running load worker: its client, its plugin and its task queue."""

    client: Client
    plugin: MistralWorkflowsPlugin
    queue: str

    async def start(self, plan: FanOut, workflow_id: str) -> WorkflowHandle[Any, Any]:
        """Start a fan-out on this worker."""
        return await self.client.start_workflow(
            FanOutWorkflow.run, plan, id=workflow_id, task_queue=self.queue
        )

    def window(self) -> int:
        """How many events the worker has sent without an acknowledgement (or a give-up)."""
        publisher: Any = self.plugin.publisher
        assert publisher is not None
        # Counted by the publisher itself, or by nats-py when it matches acknowledgements.
        if hasattr(publisher, "in_flight"):
            return int(publisher.in_flight())
        return int(publisher.js.publish_async_pending())


@contextlib.asynccontextmanager
async def load_worker(
    temporal_address: str, nats_url: str, concurrency: int, **options: Any
) -> AsyncIterator[Rig]:
    """A plugged worker running up to `concurrency` activities at once, on a fresh queue."""
    plugin = MistralWorkflowsPlugin(nats_url=nats_url, **options)
    client = await Client.connect(temporal_address, plugins=[plugin])
    queue = unique("load")
    async with Worker(
        client,
        task_queue=queue,
        workflows=[FanOutWorkflow, CountWorkflow],
        activities=[streams_tokens, streams_large_tokens, counts_to],
        max_concurrent_activities=concurrency,
        activity_task_poller_behavior=PollerBehaviorSimpleMaximum(maximum=20),
    ):
        yield Rig(client, plugin, queue)


async def until(event: asyncio.Event, timeout: float) -> None:
    """Wait for `event`; fail after `timeout` seconds (a bound on a hang, not a pace)."""
    await asyncio.wait_for(event.wait(), timeout)


# --- the checks -----------------------------------------------------------------------------


async def stored(url: str) -> list[StreamEvent]:
    """Every event the stream holds now, in stream order."""
    nc = await nats.connect(url)
    try:
        last = (await nc.jetstream().stream_info(subjects.DEFAULT_STREAM_NAME)).state.last_seq
        events: list[StreamEvent] = []
        reading = subscribe(nc, idle_timeout=5)
        async with contextlib.aclosing(reading):
            async for event in reading:
                events.append(event)
                if (event.broker_sequence or 0) >= last:
                    break
        return events
    finally:
        await nc.close()


async def tail_ids(url: str, count: int) -> dict[int, str]:
    """The event ids of the stream's last `count` messages (by sequence), read raw
    to be quick under load (a crash can only lose a tail: anything else leaves a hole)."""
    nc = await nats.connect(url)
    last = (await nc.jetstream().stream_info(subjects.DEFAULT_STREAM_NAME)).state.last_seq
    reader = Reader(
        nc,
        subjects.DEFAULT_STREAM_NAME,
        [f"{subjects.DEFAULT_PREFIX}.>"],
        start_seq=max(last - count + 1, 1),
    )
    try:
        await reader.open()
        ids: dict[int, str] = {}
        seq = 0
        while seq < last:
            msg = await reader.next(timeout=5)
            assert msg is not None, f"the stream holds {last} messages, read {len(ids)}"
            seq = msg.metadata.sequence.stream
            ids[seq] = orjson.loads(msg.data)["data"]["event_id"]
        return ids
    finally:
        await reader.close()
        await nc.close()


def unchanged(before: dict[int, str], after: Sequence[StreamEvent], killed_ns: int) -> list[str]:
    """What a crash changed: sequences missing after it (holes), tail messages read before
    it that are gone or different, and sequences up to the last one before it that now
    hold an event made after it (a lost tail whose sequences were reused)."""
    stored_at = ids_by_sequence(after)
    found = [f"sequence {s} missing" for s in range(1, max(stored_at) + 1) if s not in stored_at]
    found += [f"{s}: {i} gone" for s, i in before.items() if stored_at.get(s) != i]
    last = max(before)
    found += [
        f"{e.broker_sequence}: {e.data.event_id} made after the crash"
        for e in after
        if (e.broker_sequence or 0) <= last and e.data.event_timestamp >= killed_ns
    ]
    return found


def ids_by_sequence(events: Sequence[StreamEvent]) -> dict[int, str]:
    """The event id stored at each broker sequence."""
    return {e.broker_sequence: e.data.event_id for e in events if e.broker_sequence is not None}


def task_events(events: Sequence[StreamEvent]) -> list[StreamEvent]:
    """Only the CUSTOM_TASK_* events."""
    return [e for e in events if e.data.event_type in CUSTOM_TASK_EVENT_TYPES]


def last_attempts(events: Sequence[StreamEvent]) -> dict[str, int]:
    """The highest attempt that published events, by activity id."""
    last: dict[str, int] = {}
    for e in task_events(events):
        assert e.activity_context is not None
        ref = e.activity_context
        last[ref.activity_id] = max(last.get(ref.activity_id, 0), ref.attempt)
    return last


def problems(events: Sequence[StreamEvent], updates: int) -> list[str]:
    """What is repeated or missing: event ids stored more than once, and final attempts
    whose task events are not exactly task_sequence 0..n once each, for an n of at most
    updates+1 (a saturated worker folds updates into fewer events)."""
    copies = Counter(e.data.event_id for e in events)
    found = [f"{event_id} stored {n} times" for event_id, n in copies.items() if n > 1]
    last = last_attempts(events)
    numbers: dict[str, list[int]] = defaultdict(list)
    for e in task_events(events):
        assert e.activity_context is not None
        ref = e.activity_context
        if ref.attempt == last[ref.activity_id]:
            numbers[ref.activity_id].append(e.data.attributes.task_sequence)
    for activity_id, seen in sorted(numbers.items()):
        expected = list(range(min(max(seen) + 1, updates + 2)))
        if sorted(seen) != expected:
            missing = sorted(set(expected) - set(seen))
            extra = sorted((Counter(seen) - Counter(expected)).elements())
            found.append(f"{activity_id}: missing {missing}, repeated or unexpected {extra}")
    return found


def rebuilt_states(events: Sequence[StreamEvent], from_patches: bool = False) -> dict[str, Any]:
    """The state a consumer rebuilds for each activity's task (by activity id); with
    `from_patches`, without the COMPLETED events, which carry the whole state."""
    states = TaskStates()
    owner: dict[str, str] = {}
    for e in task_events(events):
        if from_patches and e.data.event_type == EventType.CUSTOM_TASK_COMPLETED:
            continue
        assert e.activity_context is not None
        owner[e.data.attributes.custom_task_id] = e.activity_context.activity_id
        states.apply(e)
    expected_status = "running" if from_patches else "completed"
    return {
        owner[t.task_id]: t.state if t.status == expected_status else f"status {t.status}"
        for t in states
    }


# --- 1,000 concurrent activities ------------------------------------------------------------

FAN_OUT = 1000
UPDATES = 20


@dataclass
class Run:
    """What a fan-out left: its results, the events stored, the peak concurrency."""

    results: dict[str, Any]
    events: list[StreamEvent]
    peak: int


@pytest.fixture(scope="module")
async def fan_out(temporal_address: str, nats_url: str) -> Run:
    """1,000 activities streaming 20 updates each, all at once, on one worker."""
    CROWD.reset(FAN_OUT)
    wid = unique("fan-out")
    async with load_worker(temporal_address, nats_url, FAN_OUT) as rig:
        plan = FanOut(streams_tokens.__name__, FAN_OUT, Load(UPDATES, pause=0.02))
        handle = await rig.start(plan, wid)
        await until(CROWD.full, 60)
        CROWD.go.set()
        results = await asyncio.wait_for(handle.result(), 60)
    events = [e async for e in subscribe(nats_url, workflow_exec_id=wid, idle_timeout=2)]
    return Run(results, events, CROWD.peak)


async def test_a_thousand_activities_run_at_once(fan_out: Run):
    """The worker runs the 1,000 activities at the same time, each in its first attempt."""
    assert fan_out.peak == FAN_OUT
    assert set(last_attempts(fan_out.events).values()) == {1}


async def test_a_thousand_activities_every_event_once(fan_out: Run):
    """Every task's events (STARTED, its updates, COMPLETED) are stored once each, numbered
    without a gap; a worker saturated by the load folds some updates into one event, so
    there are at most 22 per task."""
    assert len(last_attempts(fan_out.events)) == FAN_OUT
    assert FAN_OUT * 3 <= len(task_events(fan_out.events)) <= FAN_OUT * (UPDATES + 2)
    assert problems(fan_out.events, UPDATES) == []


async def test_a_thousand_activities_rebuild_their_results(fan_out: Run):
    """Each task's rebuilt state is its activity's result, also from the patches alone."""
    assert rebuilt_states(fan_out.events) == fan_out.results
    assert rebuilt_states(fan_out.events, from_patches=True) == fan_out.results


async def test_negative_control_a_lost_and_a_repeated_event_are_caught(fan_out: Run):
    """The checks above see one update removed and another stored twice."""
    events = list(fan_out.events)
    updates = [
        i for i, e in enumerate(events) if e.data.event_type == EventType.CUSTOM_TASK_IN_PROGRESS
    ]
    lost, repeated = events[updates[10]], events[updates[-10]]
    events.remove(lost)
    events.append(copy.deepcopy(repeated))
    found = problems(events, UPDATES)
    assert any(f"missing [{lost.data.attributes.task_sequence}]" in f for f in found)
    assert any(repeated.data.event_id in f for f in found)
    assert rebuilt_states(events, from_patches=True) != fan_out.results


# --- a nats-server crash under load ---------------------------------------------------------

CRASH_FAN_OUT = 1000
# Each stream lasts 20 x 0.5 s: after the first fifth, the test reads the latest ids and
# kills the server while the streams go on, with seconds to spare on a busy machine.
CRASH_PAUSE = 0.5


async def test_nats_crash_under_load_loses_and_repeats_nothing(temporal_address, tmp_path):
    """kill -9 of nats-server while 1,000 activities stream, restart on the same store:
    every activity completes (maybe on a retry), nothing stored before the crash is lost,
    every final attempt's events are there once and rebuild its result."""
    CROWD.reset(CRASH_FAN_OUT, mark=CRASH_FAN_OUT * UPDATES // 5)
    wid = unique("crash-load")
    with NatsServer(store_dir=tmp_path) as server:
        async with load_worker(temporal_address, server.url, CRASH_FAN_OUT) as rig:
            plan = FanOut(streams_tokens.__name__, CRASH_FAN_OUT, Load(UPDATES, pause=CRASH_PAUSE))
            handle = await rig.start(plan, wid)
            await until(CROWD.full, 60)
            CROWD.go.set()
            await until(CROWD.marked, 30)
            before = await tail_ids(server.url, 500)
            server.kill()
            killed_ns, at_kill = time.time_ns(), CROWD.updates
            await asyncio.sleep(1.5)
            at_restart = CROWD.updates
            server.restart()
            results = await asyncio.wait_for(handle.result(), 60)
            window = rig.window()
        events = await stored(server.url)
    # The crash came mid-stream, and the tasks kept streaming while the server was away.
    assert 0 < at_kill < at_restart
    assert at_kill < CRASH_FAN_OUT * UPDATES
    assert unchanged(before, events, killed_ns) == []
    assert window == 0
    assert len(last_attempts(events)) == CRASH_FAN_OUT
    assert problems(events, UPDATES) == []
    assert rebuilt_states(events) == results
    assert rebuilt_states(events, from_patches=True) == results


# --- an outage that overflows nats-py's reconnect buffer ------------------------------------

LARGE_FAN_OUT = 50
LARGE_BYTES = 20 * 1024


async def test_outage_overflowing_the_reconnect_buffer_loses_and_repeats_nothing(
    temporal_address, tmp_path
):
    """50 activities send 20 updates of 20 KB each (20 MB, ten times nats-py's 2 MiB
    reconnect buffer) while nats-server is down: once it is back, every activity
    completes, its final attempt's events are all there once, and the in-flight window
    is empty again."""
    CROWD.reset(LARGE_FAN_OUT, mark=LARGE_FAN_OUT * UPDATES)
    wid = unique("overflow")
    with NatsServer(store_dir=tmp_path) as server:
        worker = load_worker(temporal_address, server.url, LARGE_FAN_OUT, persist_timeout=10)
        async with worker as rig:
            load = Load(UPDATES, token_bytes=LARGE_BYTES, pause=0.01)
            plan = FanOut(streams_large_tokens.__name__, LARGE_FAN_OUT, load)
            handle = await rig.start(plan, wid)
            await until(CROWD.full, 60)
            before = await tail_ids(server.url, 500)
            server.kill()
            killed_ns = time.time_ns()
            CROWD.go.set()
            await until(CROWD.marked, 30)  # every update made while the server is down
            await asyncio.sleep(1)  # the final flushes re-send while the server is away
            server.restart()
            results = await asyncio.wait_for(handle.result(), 30)
            window = rig.window()
        events = await stored(server.url)
    assert unchanged(before, events, killed_ns) == []
    assert window == 0
    assert len(last_attempts(events)) == LARGE_FAN_OUT
    assert problems(events, UPDATES) == []
    rebuilt = {a: digest(s) for a, s in rebuilt_states(events, from_patches=True).items()}
    assert rebuilt == results


# --- a slow consumer -------------------------------------------------------------------------

SLOW_UPDATES = 20_000
STALL_AT = 100
# What the reader may hold unread: its pull requests (a batch, topped up at half) plus
# heartbeats and API replies.
READ_AHEAD = 512


async def test_slow_consumer_neither_stalls_the_producer_nor_misses_events(
    temporal_address, nats_url
):
    """A consumer that stops reading, then reads slowly: the producer's 20,000 events are
    all stored while it stops, it buffers no more than its pull requests, and it ends up
    with every event, in order."""
    wid = unique("slow")
    nc = await nats.connect(nats_url)  # its own, so the connection's stats are the reader's
    received: list[StreamEvent] = []
    resume = asyncio.Event()

    async def consume() -> None:
        reading = subscribe(nc, workflow_exec_id=wid, stream="counter")
        async with contextlib.aclosing(reading):
            async for event in reading:
                received.append(event)
                if len(received) == STALL_AT:
                    await resume.wait()
                if event.data.event_type == EventType.CUSTOM_TASK_COMPLETED:
                    return
                await asyncio.sleep(0.001)

    consumer = asyncio.ensure_future(consume())
    try:
        async with load_worker(temporal_address, nats_url, 1) as rig:
            handle = await rig.client.start_workflow(
                CountWorkflow.run, SLOW_UPDATES, id=wid, task_queue=rig.queue
            )
            assert await asyncio.wait_for(handle.result(), 40) == SLOW_UPDATES
        read_so_far, buffered = len(received), nc.stats["in_msgs"] - len(received)
        resume.set()
        await asyncio.wait_for(consumer, 60)
    finally:
        consumer.cancel()
        await nc.close()
    assert read_so_far == STALL_AT
    assert buffered <= READ_AHEAD
    assert [e.data.attributes.task_sequence for e in received] == list(range(SLOW_UPDATES + 2))
    sequences = [e.broker_sequence or 0 for e in received]
    assert sequences == sorted(set(sequences))
    states = TaskStates()
    for e in received[:-1]:  # from the patches, without the COMPLETED event's full state
        states.apply(e)
    (task,) = states
    assert task.state == {"n": SLOW_UPDATES}
