"""Helpers shared by the tests: running a plugged worker and reading events back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from mistral_workflows import MistralWorkflowsPlugin, StreamEvent, TaskStates, subscribe
from mistral_workflows.core.events import CUSTOM_TASK_EVENT_TYPES

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


def types(events: Sequence[StreamEvent]) -> list[str]:
    """The event types, in order."""
    return [e.data.event_type for e in events]


def rebuilt(events: Sequence[StreamEvent]) -> TaskStates:
    """Task states rebuilt from `events`."""
    states = TaskStates()
    for event in events:
        states.apply(event)
    return states
