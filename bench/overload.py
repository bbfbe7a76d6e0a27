"""Overload: about 1,000 concurrent token streams on one worker, offering several times
what one worker process can publish one event per update.

The same activities run twice on the same worker: without `Task` (the state kept in a
dict), then streaming. Compared: how long the streams take, the events per update, and the
update-to-consumer delay, measured by a consumer in another process on a sample of the
streams (so that it does not take the worker's CPU); then one `subscribe()` rebuilds every
task and checks its final state and that no event is stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from typing import Any

import nats
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

import mistral_workflows as workflows
from bench._common import Row, Servers, percentile
from mistral_workflows import MistralWorkflowsPlugin, TaskStates, subscribe
from mistral_workflows.core import subjects
from mistral_workflows.core.context import current_scope
from mistral_workflows.core.task import Task

TOKENS = 100
TOKEN_INTERVAL = 0.005
STREAM = "overload"
SAMPLE = 10  # the consumer watches one activity in SAMPLE
START_TIMEOUT = 120.0

_made: dict[tuple[int, int], int] = {}
_events: dict[int, int] = {}
_running = 0
_expected = 0
_all_running: asyncio.Event | None = None


def token(k: int, i: int) -> str:
    return f"{k}.{i} "


def final_state(k: int) -> dict[str, Any]:
    tokens = [token(k, i) for i in range(TOKENS)]
    return {"tokens": tokens, "text": "".join(tokens)}


@workflows.activity()
async def overload_answer(k: int, streaming: bool) -> tuple[float, float]:
    """Make TOKENS paced tokens, streamed or not; returns when the first token was made and
    when the last was (streaming: when every event was acknowledged)."""
    global _running
    assert _all_running is not None, "run through produce()"
    _running += 1
    if _running >= _expected:
        _all_running.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_all_running.wait(), START_TIMEOUT)
    started = time.perf_counter()
    state: dict[str, Any] = {"tokens": [], "text": ""}
    if not streaming:
        for i in range(TOKENS):
            await asyncio.sleep(TOKEN_INTERVAL)
            tok = token(k, i)
            state = {"tokens": [*state["tokens"], tok], "text": state["text"] + tok}
        return started, time.perf_counter()
    async with Task(type=STREAM, state=state) as task:
        for i in range(TOKENS):
            await asyncio.sleep(TOKEN_INTERVAL)
            tok = token(k, i)
            _made[k, i] = time.time_ns()
            await task.update_state(
                {"tokens": [*task.state["tokens"], tok], "text": task.state["text"] + tok}
            )
    _events[k] = task._writer._seq
    await current_scope().emitter.flush()
    return started, time.perf_counter()


@workflow.defn
class OverloadBench:
    @workflow.run
    async def run(self, n: int, streaming: bool) -> list[tuple[float, float]]:
        return list(
            await asyncio.gather(
                *(
                    workflow.execute_activity(
                        overload_answer,
                        args=[k, streaming],
                        start_to_close_timeout=timedelta(minutes=10),
                    )
                    for k in range(n)
                )
            )
        )


async def produce(client: Client, queue: str, n: int, streaming: bool) -> tuple[str, float, float]:
    """Run the n activities at once; returns the run's id, a stream's mean length, and the
    time from the first token to the end of the last stream."""
    global _running, _expected, _all_running
    _running, _expected, _all_running = 0, n, asyncio.Event()
    exec_id = f"overload-{queue}-{'on' if streaming else 'off'}"
    times = await client.execute_workflow(
        OverloadBench.run, args=[n, streaming], id=exec_id, task_queue=queue
    )
    mean = sum(end - start for start, end in times) / len(times)
    return exec_id, mean, max(t[1] for t in times) - min(t[0] for t in times)


def sampled_subjects(n: int) -> list[str]:
    """Subjects of one activity in SAMPLE (the activity ids are the workflow's command
    numbers: 2 to n + 1 here)."""
    prefix = subjects.DEFAULT_PREFIX
    ids = range(2, n + 2, SAMPLE)
    return [f"{prefix}.*.{STREAM}.*.*.*.*.activity.*.{i}.*" for i in ids]


async def _watch(url: str, filters: list[str], expected: int) -> None:
    """The consumer process: note when each token of the sampled streams arrives; print
    [k, i, arrival] triples once every sampled stream completed."""
    nc = await nats.connect(url)
    seen: list[tuple[int, int, int]] = []
    done = asyncio.Event()
    completed = 0

    async def on_msg(msg: Any) -> None:
        nonlocal completed
        now = time.time_ns()
        data = json.loads(msg.data)["data"]
        kind = data["event_type"]
        if kind == "CUSTOM_TASK_COMPLETED":
            completed += 1
            if completed >= expected:
                done.set()
        elif kind == "CUSTOM_TASK_IN_PROGRESS":
            for op in data["attributes"]["payload"]["value"]:
                if op["path"].startswith("/tokens/"):
                    k, i = op["value"].split()[0].split(".")
                    seen.append((int(k), int(i), now))

    for subject in filters:
        await nc.subscribe(subject, cb=on_msg)
    await nc.flush()
    print("ready", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), 300)
    print(json.dumps(seen), flush=True)
    await nc.close()


def consumer_process(url: str, n: int) -> subprocess.Popen[str]:
    filters = sampled_subjects(n)
    code = (
        "import asyncio, json, sys; from bench.overload import _watch; "
        "asyncio.run(_watch(sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])))"
    )
    args = [sys.executable, "-c", code, url, json.dumps(filters), str(len(filters))]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


async def check(url: str, exec_id: str, n: int) -> int:
    """Rebuild every task; raises if one is missing or wrong. Returns the events read."""
    states = TaskStates()
    count = completed = 0
    async for event in subscribe(url, workflow_exec_id=exec_id, stream=STREAM, idle_timeout=10):
        count += 1
        task = states.apply(event)
        if task is not None and task.status == "completed":
            completed += 1
            if completed == n:
                break
    seen = set()
    for task in states:
        tokens = task.state["tokens"] if isinstance(task.state, dict) else None
        k = int(tokens[0].split(".")[0]) if tokens else -1
        if task.status != "completed" or task.state != final_state(k):
            raise AssertionError(f"task {task.task_id} ({task.status}) rebuilt wrong")
        seen.add(k)
    if seen != set(range(n)):
        raise AssertionError(f"{n - len(seen)} of {n} tasks missing")
    return count


async def run(servers: Servers, n: int) -> list[Row]:
    _made.clear()
    _events.clear()
    plugin = MistralWorkflowsPlugin(nats_url=servers.nats_url)
    client = await Client.connect(servers.temporal_address, plugins=[plugin])
    queue = f"bench-overload-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[OverloadBench],
        activities=[overload_answer],
        max_concurrent_activities=max(n, 1),
    ):
        await plugin.wait_connected()
        cpu = time.process_time()
        _, off, off_span = await produce(client, queue, n, streaming=False)
        cpu_off = time.process_time() - cpu
        consumer = consumer_process(servers.nats_url, n)
        cpu = time.process_time()
        exec_id, on, on_span = await produce(client, queue, n, streaming=True)
        cpu_on = time.process_time() - cpu
        out, _ = await asyncio.to_thread(consumer.communicate, timeout=600)
    arrivals = json.loads(out.strip().splitlines()[-1])
    delays = [(at - _made[k, i]) / 1e6 for k, i, at in arrivals]
    events = sum(_events.values())
    stored = await check(servers.nats_url, exec_id, n)
    updates = n * TOKENS
    ratio = on / off
    p99 = percentile(delays, 0.99) if delays else float("inf")
    return [
        Row(
            "overload",
            f"{n} streams x {TOKENS} tokens {TOKEN_INTERVAL * 1e3:g} ms apart: updates/s offered",
            updates / (TOKENS * TOKEN_INTERVAL),
            "up/s",
        ),
        Row("overload", "  a stream's mean length, streaming off", off, "s"),
        Row("overload", "  a stream's mean length, streaming on", on, "s"),
        Row("overload", "  stream length on / off", ratio, "x", "<= 1.1", ratio <= 1.1),
        Row("overload", "  first token to last stream's end, on / off", on_span / off_span, "x"),
        Row("overload", "  events per update", (events - 2 * n) / updates, "ev"),
        Row("overload", "  worker CPU per update, streaming off", cpu_off / updates * 1e6, "us"),
        Row("overload", "  worker CPU per update, streaming on", cpu_on / updates * 1e6, "us"),
        Row("overload", "  worker CPU on / off", cpu_on / cpu_off, "x"),
        Row(
            "overload",
            f"  update-to-consumer p99 (1 stream in {SAMPLE})",
            p99,
            "ms",
            "<= 50",
            p99 <= 50,
        ),
        Row("overload", "  update-to-consumer max", max(delays, default=0.0), "ms"),
        Row(
            "overload",
            "  events stored twice or lost (all states exact)",
            stored - events,
            "ev",
            "0",
            stored == events,
        ),
    ]
