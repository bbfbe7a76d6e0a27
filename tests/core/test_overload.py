"""Overload: when the window of unacknowledged events is full, a task folds its changes
while its previous event waits for room, and still delivers every change exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import nats
import pytest

from mistral_workflows import TaskStates, subscribe
from mistral_workflows.core import subjects
from mistral_workflows.core.context import (
    ActivityRef,
    ExecutionContext,
    Scope,
    reset_scope,
    use_scope,
)
from mistral_workflows.core.emitter import Emitter
from mistral_workflows.core.errors import PublishError
from mistral_workflows.core.events import EventType
from mistral_workflows.core.publisher import Publisher
from mistral_workflows.core.task import Task
from mistral_workflows.dev import NatsServer
from mistral_workflows.worker import StreamSettings, provision
from tests.support import IDLE, unique

TASKS = 100
TOKENS = 100
WINDOW = 4  # unacknowledged events across the publisher: far fewer than the tasks


@asynccontextmanager
async def activity_scope(nats_url: str, exec_id: str, window: int) -> AsyncIterator[Emitter]:
    """An activity attempt's publishing scope on a real connection, with a small window."""
    nc = await nats.connect(nats_url)
    await provision(nc.jetstream(), StreamSettings())
    publisher = Publisher(
        nc,
        stream_name=subjects.DEFAULT_STREAM_NAME,
        prefix=subjects.DEFAULT_PREFIX,
        max_event_bytes=1 << 20,
        max_in_flight=window,
    )
    context = ExecutionContext("default", "Overload", exec_id, "run", exec_id, None)
    ref = ActivityRef("1", "overload", 1)
    emitter = publisher.emitter(context, ref)
    token = use_scope(Scope(context, ref, emitter))
    try:
        yield emitter
        await emitter.flush()
    finally:
        reset_scope(token)
        await nc.close()


def token(k: int, i: int) -> str:
    return f"{k}.{i} "


def final_state(k: int) -> dict[str, Any]:
    tokens = [token(k, i) for i in range(TOKENS)]
    return {"tokens": tokens, "text": "".join(tokens)}


async def stream(k: int, sent: dict[int, int]) -> None:
    async with Task(type="overload", state={"tokens": [], "text": ""}, id=f"t{k}") as task:
        for i in range(TOKENS):
            tok = token(k, i)
            await task.update_state(
                {"tokens": [*task.state["tokens"], tok], "text": task.state["text"] + tok}
            )
            await asyncio.sleep(0)  # a producer awaiting its source between tokens
    sent[k] = task._writer._seq


def check_exactly_once(events: list[Any], tasks: int) -> TaskStates:
    """Every task's events stored once each, numbered without a gap, and its state rebuilt
    exactly; returns the rebuilt states."""
    numbers = Counter(
        (e.data.attributes.custom_task_id, e.data.attributes.task_sequence) for e in events
    )
    twice = [key for key, count in numbers.items() if count > 1]
    assert not twice, f"stored twice: {twice[:5]}"
    per_task = Counter(task_id for task_id, _ in numbers)
    for task_id, count in per_task.items():
        assert {n for t, n in numbers if t == task_id} == set(range(count)), f"gap in {task_id}"
    states = TaskStates()
    for event in events:
        states.apply(event)
    rebuilt = {t.task_id: (t.status, t.state) for t in states}
    expected = {f"t{k}": ("completed", final_state(k)) for k in range(tasks)}
    assert rebuilt == expected
    return states


async def read_all(nats_url: str, exec_id: str) -> list[Any]:
    return [
        e
        async for e in subscribe(
            nats_url, workflow_exec_id=exec_id, stream="overload", idle_timeout=IDLE
        )
        if e.data.event_type.startswith("CUSTOM_TASK")
    ]


async def test_a_full_window_folds_changes_and_delivers_each_once(nats_url):
    """100 tasks streaming 100 tokens each through a window of 4 unacknowledged events:
    while a task's previous event waits for room its changes fold, so it sends fewer
    events than updates; every state rebuilds exactly and no event is stored twice."""
    exec_id = unique("overload")
    sent: dict[int, int] = {}
    async with activity_scope(nats_url, exec_id, WINDOW):
        await asyncio.gather(*(stream(k, sent) for k in range(TASKS)))
    events = await read_all(nats_url, exec_id)
    check_exactly_once(events, TASKS)
    assert len(events) == sum(sent.values())
    progress = sum(e.data.event_type == EventType.CUSTOM_TASK_IN_PROGRESS for e in events)
    assert progress < TASKS * TOKENS // 2, f"{progress} events for {TASKS * TOKENS} updates"


async def test_a_duplicate_or_a_missing_event_is_seen(nats_url):
    """Control: the check above fails on an event stored twice, and on one missing."""
    exec_id = unique("overload-control")
    sent: dict[int, int] = {}
    async with activity_scope(nats_url, exec_id, WINDOW):
        await asyncio.gather(*(stream(k, sent) for k in range(2)))
    events = await read_all(nats_url, exec_id)
    check_exactly_once(events, 2)
    middle = len(events) // 2
    with pytest.raises(AssertionError, match="stored twice"):
        check_exactly_once([*events, events[middle]], 2)
    with pytest.raises(AssertionError):
        check_exactly_once(events[:middle] + events[middle + 1 :], 2)


async def test_a_producer_blocks_only_with_32_kib_folded_then_fails(tmp_path):
    """NATS stops answering: the producer goes on while its changes fold behind the event
    waiting for room, blocks once 32 KiB of them are folded, and gets PublishError once that
    wait reaches persist_timeout, instead of hanging."""
    with NatsServer(store_dir=tmp_path) as server:
        nc = await nats.connect(server.url)
        await provision(nc.jetstream(), StreamSettings())
        publisher = Publisher(
            nc,
            stream_name=subjects.DEFAULT_STREAM_NAME,
            prefix=subjects.DEFAULT_PREFIX,
            max_event_bytes=1 << 20,
            max_in_flight=1,
            persist_timeout=1.0,
        )
        context = ExecutionContext("default", "Stalled", "stalled", "run", "stalled", None)
        ref = ActivityRef("1", "stalled", 1)
        token = use_scope(Scope(context, ref, publisher.emitter(context, ref)))
        accepted = 0
        try:
            async with Task(type="stalled", state={"n": 0}) as task:
                await task.update_state({"n": 1})
                await asyncio.sleep(0.5)  # acknowledged: the window has room again
                assert server.pid is not None
                os.kill(server.pid, signal.SIGSTOP)
                try:
                    with pytest.raises(PublishError, match="waiting for JetStream"):
                        for i in range(1000):
                            await asyncio.wait_for(
                                task.update_state({f"k{i}": "x" * 1000}), timeout=30
                            )
                            accepted += 1
                            await asyncio.sleep(0)
                finally:
                    os.kill(server.pid, signal.SIGCONT)
        except PublishError:
            pass  # the task's end cannot be stored either
        finally:
            reset_scope(token)
            await nc.close()
    # One update sent and never acknowledged, then about 32 KiB of 1 KB updates folded.
    assert 20 <= accepted <= 40, accepted
