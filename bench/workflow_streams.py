"""Publish-to-consumer latency vs Temporal's Workflow Streams, in the same run.

Temporal's experimental Workflow Streams (`temporalio.contrib.workflow_streams`) keep the
event log inside the workflow: publishers send batches as signals, subscribers long-poll
with updates. Its intended producer for LLM tokens is an activity publishing through
`WorkflowStreamClient.from_within_activity()` to its parent workflow, so that is what
streams here: an activity emits `n` token-stream updates (the fields of our IN_PROGRESS
event's data: ids, the producer's timestamp, a JSON patch adding one token) paced at
bench/latency.py's rate, and a subscriber in the same process records the delay of each
item. Ours is measured by bench/latency.py's `ours()` (the same rate, through
`subscribe()`), in the same run.

Workflow Streams is configured for its lowest latency, both ends:
- the producer publishes every item with `force_flush=True`, which wakes the background
  flusher at once instead of waiting for `batch_interval` (2 s by default, 200 ms in
  Temporal's LLM sample). Signals are serialised by the client's flush lock, so items
  published while one is in flight go together in the next: sending sooner is not
  possible without breaking its ordering and exactly-once batches.
- the subscriber polls with `poll_cooldown=0`: a poll is a long-poll update that returns
  as soon as new items land, and the next one is issued at once instead of after the
  default 100 ms cooldown (the docstring keeps 0 for tests, because polls grow the
  history; it is the lower bound on latency).
Publishing from workflow code instead appends to the log without a signal, but workflow
code cannot call a model; pacing it needs a timer (a workflow task round trip) per event.

The history cost is the workflow's history length with `n` items streamed minus the same
workflow streaming nothing, per item: publish signals and the subscriber's poll updates,
each with the workflow task that handles it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from typing import Any

import nats
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.contrib.workflow_streams import WorkflowStream, WorkflowStreamClient

with workflow.unsafe.imports_passed_through():
    from bench._common import Row, Servers, percentile, plugged_worker
    from bench.latency import RATE, ours, paced
    from mistral_workflows.core.events import EventType
    from mistral_workflows.worker import StreamSettings, provision

TOPIC = "tokens"
SETTLE = 0.5  # as in latency.ours(): let the subscriber's first poll land before streaming


def token_update(i: int, info: activity.Info) -> dict[str, Any]:
    """A token-stream update carrying the same fields as our IN_PROGRESS event's data."""
    return {
        "event_type": EventType.CUSTOM_TASK_IN_PROGRESS,
        "event_id": uuid.uuid4().hex,
        "event_timestamp": time.time_ns(),
        "workflow_name": info.workflow_type,
        "workflow_exec_id": info.workflow_id,
        "root_workflow_exec_id": info.workflow_id,
        "parent_workflow_exec_id": None,
        "workflow_run_id": info.workflow_run_id,
        "attributes": {
            "custom_task_id": info.activity_id,
            "custom_task_type": "token-stream",
            "payload": {
                "type": "json_patch",
                "value": [{"op": "add", "path": f"/tokens/{i}", "value": f" t{i}"}],
            },
        },
    }


@activity.defn
async def stream_tokens(n: int) -> None:
    stream = WorkflowStreamClient.from_within_activity()
    tokens, info = stream.topic(TOPIC, type=dict), activity.info()
    if n:
        await asyncio.sleep(SETTLE)
    async with stream:

        async def send(i: int) -> None:
            tokens.publish(token_update(i, info), force_flush=True)

        await paced(n, send)
        # Python 3.11's asyncio.wait_for swallows a cancel that lands just as the flusher
        # wakes, and leaving the block right after a force_flush then hangs for ever on the
        # cancelled flusher. Flushing first lets the flusher go back to sleep.
        await stream.flush()


@workflow.defn
class StreamHost:
    @workflow.init
    def __init__(self, n: int) -> None:
        self.stream = WorkflowStream()
        self.consumed = False

    @workflow.run
    async def run(self, n: int) -> None:
        await workflow.execute_activity(
            stream_tokens,
            n,
            start_to_close_timeout=timedelta(seconds=30 + 2 * n / RATE),
            retry_policy=RetryPolicy(maximum_attempts=1),  # a retry would stream twice
        )
        # Closing with a poll in flight would fail it: wait until the reader is done.
        await workflow.wait_condition(lambda: self.consumed)

    @workflow.signal
    def finish(self) -> None:
        self.consumed = True


async def streamed(client: Client, queue: str, n: int) -> tuple[list[float], int]:
    """Delays in ns of `n` items streamed through Workflow Streams, and the history length."""
    handle = await client.start_workflow(
        StreamHost.run, n, id=f"wfstreams-{n}-{queue}", task_queue=queue
    )
    delays: list[float] = []
    if n:
        items = WorkflowStreamClient.create(client, handle.id).subscribe(
            TOPIC, result_type=dict, poll_cooldown=timedelta(0)
        )
        async for item in items:
            delays.append(time.time_ns() - item.data["event_timestamp"])
            if len(delays) == n:
                break
        await items.aclose()  # type: ignore[attr-defined]  # an async generator
    await handle.signal(StreamHost.finish)
    await handle.result()
    return delays, len((await handle.fetch_history()).events)


async def provisioned(url: str) -> None:
    """Create our stream first, as a worker would: ours() subscribes before it publishes."""
    nc = await nats.connect(url)
    try:
        await provision(nc.jetstream(), StreamSettings())
    finally:
        await nc.close()


async def run(servers: Servers, n: int) -> list[Row]:
    await provisioned(servers.nats_url)
    mine = [d / 1e6 for d in await ours(servers.nats_url, n)]
    async with plugged_worker(servers, [StreamHost], [stream_tokens], plugin=False) as (
        client,
        queue,
    ):
        _, empty = await streamed(client, queue, 0)
        delays, length = await streamed(client, queue, n)
    theirs = [d / 1e6 for d in delays]
    p50, ours50 = percentile(theirs, 0.5), percentile(mine, 0.5)
    ratio = p50 / ours50
    return [
        Row("wfstreams", f"Workflow Streams p50 at {RATE} ev/s", p50, "ms"),
        Row("wfstreams", f"Workflow Streams p99 at {RATE} ev/s", percentile(theirs, 0.99), "ms"),
        Row("wfstreams", "Workflow Streams max", max(theirs), "ms"),
        Row("wfstreams", f"subscribe() p50 at {RATE} ev/s, same run", ours50, "ms"),
        Row("wfstreams", "Workflow Streams p50 / ours p50", ratio, "x", ">= 30", ratio >= 30),
        Row(
            "wfstreams",
            "Workflow Streams history events per streamed event",
            (length - empty) / n,
            "ev",
        ),
    ]
