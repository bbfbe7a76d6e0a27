"""Helpers shared by the tests: running a plugged worker and reading events back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import nats
import orjson
from temporalio.client import Client
from temporalio.worker import Worker

from mistral_workflows import MistralWorkflowsPlugin, StreamEvent, TaskStates, subscribe
from mistral_workflows.core import subjects
from mistral_workflows.core.events import CUSTOM_TASK_EVENT_TYPES, EventType
from mistral_workflows.core.filter import EventFilter
from tests.workflows import Call, RunActivity

IDLE = 0.5


def unique(prefix: str) -> str:
    """A fresh id, so that tests never read each other's events."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def plugged_client(temporal_address: str, nats_url: str, **options: Any) -> Client:
    """A Temporal client with the plugin installed."""
    plugin = MistralWorkflowsPlugin(nats_url=nats_url, **options)
    return await Client.connect(temporal_address, plugins=[plugin])


@asynccontextmanager
async def running_worker(
    client: Client,
    task_queue: str,
    workflows: Sequence[type] = (),
    activities: Sequence[Callable[..., Any]] = (),
) -> AsyncIterator[Worker]:
    """A worker running in the background for the duration of the block."""
    async with Worker(
        client, task_queue=task_queue, workflows=workflows, activities=activities
    ) as worker:
        yield worker


async def collect(nats_url: str, idle: float = IDLE, **filters: Any) -> list[StreamEvent]:
    """Every event matching `filters` that is in the stream now (stops when idle)."""
    return [e async for e in subscribe(nats_url, idle_timeout=idle, **filters)]


async def task_events(nats_url: str, **filters: Any) -> list[StreamEvent]:
    """Like `collect`, without the lifecycle events: only CUSTOM_TASK_* events."""
    return await collect(nats_url, event_types=CUSTOM_TASK_EVENT_TYPES, **filters)


@asynccontextmanager
async def consumer_made(
    nats_url: str, stream_name: str = subjects.DEFAULT_STREAM_NAME, timeout: float = 15
) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Listen for JetStream's word that a consumer was made on the stream. The function
    yielded returns once a reader started in the block (a task, a process) has its consumer:
    from then on it misses nothing published. The stream must exist for a consumer to be made.
    """
    nc = await nats.connect(nats_url)

    async def made() -> None:
        try:
            await created.next_msg(timeout=timeout)
        except TimeoutError:
            raise AssertionError(
                f"no reader made a consumer on stream {stream_name!r} within {timeout} s"
            ) from None

    try:
        created = await nc.subscribe(f"$JS.EVENT.ADVISORY.CONSUMER.CREATED.{stream_name}.*")
        await nc.flush()  # The server knows the subscription before any reader starts.
        yield made
    finally:
        await nc.close()


async def raw_messages(nats_url: str, **ids: str) -> list[tuple[int, dict[str, Any]]]:
    """The stored messages matching `ids` (`EventFilter` fields), read without our consumer."""
    nc = await nats.connect(nats_url)
    sub = await nc.jetstream().subscribe(
        EventFilter(**ids).subject(subjects.DEFAULT_PREFIX), ordered_consumer=True
    )
    out = []
    try:
        while True:
            msg = await sub.next_msg(timeout=IDLE)
            out.append((msg.metadata.sequence.stream, orjson.loads(msg.data)))
    except TimeoutError:
        pass
    finally:
        await nc.close()
    return out


# The official client's union is not discriminated: check the class it picked, too.
_OFFICIAL_NAMES = {EventType.CUSTOM_TASK_IN_PROGRESS: "CustomTaskInProgressResponse"}


def official_name(event_type: str) -> str:
    """The class the official Mistral client parses an event of this type into."""
    return _OFFICIAL_NAMES.get(event_type, event_type.title().replace("_", "") + "Response")


async def official_models(nats_url: str, **ids: str) -> list[Any]:
    """Every stored message matching `ids`, parsed by the official Mistral client's models."""
    from mistralai.client.models import StreamEventSsePayload

    parsed = []
    for seq, body in await raw_messages(nats_url, **ids):
        event = StreamEventSsePayload.model_validate({**body, "broker_sequence": seq})
        kind = body["data"]["event_type"]
        assert type(event.data).__name__ == official_name(kind), (kind, type(event.data).__name__)
        parsed.append(event)
    return parsed


def types(events: Sequence[StreamEvent]) -> list[str]:
    """The event types, in order."""
    return [e.data.event_type for e in events]


def rebuilt(events: Sequence[StreamEvent]) -> TaskStates:
    """Task states rebuilt from `events`."""
    states = TaskStates()
    for event in events:
        states.apply(event)
    return states


async def run_call(
    temporal_address: str, nats_url: str, task_queue: str, call: Call, activities: Sequence[Any]
) -> tuple[Any, list[StreamEvent]]:
    """Run `call` through `RunActivity` on a plugged worker with `activities`; return the
    workflow's result and the task events of the run."""
    client = await plugged_client(temporal_address, nats_url)
    wid = unique(call.activity)
    async with running_worker(client, task_queue, [RunActivity], activities):
        result = await client.execute_workflow(RunActivity.run, call, id=wid, task_queue=task_queue)
    return result, await task_events(nats_url, workflow_exec_id=wid)
