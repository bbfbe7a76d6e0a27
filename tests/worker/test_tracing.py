"""Tracing: the activity's span travels with its events (W3C headers) and a consumer's span
links to it; with no span or tracing off, nothing is added."""

from __future__ import annotations

import asyncio

import nats
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor

import mistral_workflows as workflows
from mistral_workflows import MistralWorkflowsPlugin, StreamEvent
from mistral_workflows.core import subjects
from mistral_workflows.core.encoding import EXPECTED_STREAM, MSG_ID, TRACEPARENT
from mistral_workflows.core.task import Task
from mistral_workflows.tracing import parent_context, span_links
from tests.support import running_worker, task_events, unique
from tests.workflows import Call, RunActivity

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def provider() -> TracerProvider:
    """An SDK tracer provider recording every ended span in memory (set globally once:
    OpenTelemetry refuses to replace it)."""
    current = trace.get_tracer_provider()
    if not isinstance(current, TracerProvider):
        current = TracerProvider()
        trace.set_tracer_provider(current)
    current.add_span_processor(SimpleSpanProcessor(EXPORTER))
    return current


@workflows.activity()
async def stream_three() -> str:
    async with Task(type="traced", state={"n": 0}) as task:
        for n in (1, 2, 3):
            await task.update_state({"n": n})
            await asyncio.sleep(0)  # each update its own event
    return "done"


@workflows.activity()
async def stream_in_own_span() -> str:
    with trace.get_tracer("test-activity").start_as_current_span("generate"):
        async with Task(type="traced", state={"n": 0}) as task:
            await task.update_state({"n": 1})
    return "done"


async def run(
    temporal_address: str, nats_url: str, queue: str, activity: str, **options: object
) -> str:
    """Run `activity` once in a worker made with the given client `options`; returns the
    workflow id."""
    interceptors = options.pop("interceptors", [])
    plugin = MistralWorkflowsPlugin(nats_url=nats_url, **options)  # type: ignore[arg-type]
    client = await Client.connect(temporal_address, plugins=[plugin], interceptors=interceptors)
    wf_id = unique("traced")
    async with running_worker(client, queue, [RunActivity], [stream_three, stream_in_own_span]):
        await client.execute_workflow(RunActivity.run, Call(activity), id=wf_id, task_queue=queue)
    return wf_id


def ended(name: str) -> list[ReadableSpan]:
    return [span for span in EXPORTER.get_finished_spans() if span.name == name]


async def raw_headers(nats_url: str, events: list[StreamEvent]) -> list[dict[str, str]]:
    """The NATS headers the events were stored with."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        stored = [
            await js.get_msg(subjects.DEFAULT_STREAM_NAME, e.broker_sequence or 0) for e in events
        ]
        return [dict(msg.headers or {}) for msg in stored]
    finally:
        await nc.close()


async def test_a_consumer_span_links_to_the_activity_span_of_temporals_interceptor(
    provider, temporal_address, nats_url, task_queue
):
    """With temporalio's TracingInterceptor, every task event carries the RunActivity span,
    and a consumer span started with `span_links(event)` links to it."""
    wf_id = await run(
        temporal_address, nats_url, task_queue, "stream_three", interceptors=[TracingInterceptor()]
    )
    (producer,) = [
        s
        for s in ended("RunActivity:stream_three")
        if s.attributes and s.attributes.get("temporalWorkflowID") == wf_id
    ]
    events = await task_events(nats_url, workflow_exec_id=wf_id)
    assert len(events) >= 3  # STARTED, the updates (some may fold), COMPLETED
    consumer = provider.get_tracer("test-consumer")
    for event in events:
        with consumer.start_as_current_span("show event", links=span_links(event)) as span:
            (link,) = span.links  # type: ignore[attr-defined]
            assert link.context.trace_id == producer.context.trace_id
            assert link.context.span_id == producer.context.span_id
            assert link.context.is_remote


async def test_a_span_made_in_the_activity_travels_without_temporals_interceptor(
    provider, temporal_address, nats_url, task_queue
):
    """Without the interceptor, a span the activity opens itself is the one its events
    carry; `parent_context` continues it as the parent of a consumer span."""
    wf_id = await run(temporal_address, nats_url, task_queue, "stream_in_own_span")
    events = await task_events(nats_url, workflow_exec_id=wf_id)
    produced = {s.context.span_id: s for s in ended("generate")}
    for event in events:
        assert event.trace_context is not None
        with provider.get_tracer("c").start_as_current_span(
            "child", context=parent_context(event)
        ) as span:
            parent = span.parent  # type: ignore[attr-defined]
            assert parent is not None and parent.span_id in produced
            assert span.get_span_context().trace_id == produced[parent.span_id].context.trace_id


async def test_no_span_adds_nothing_to_the_events(provider, temporal_address, nats_url, task_queue):
    """Negative control: with tracing on but no span in the activity, the events are stored
    with exactly the headers they had before tracing existed, and link to nothing."""
    wf_id = await run(temporal_address, nats_url, task_queue, "stream_three")
    events = await task_events(nats_url, workflow_exec_id=wf_id)
    assert events and all(e.trace_context is None and span_links(e) == [] for e in events)
    for headers in await raw_headers(nats_url, events):
        assert set(headers) == {MSG_ID, EXPECTED_STREAM}


async def test_tracing_off_adds_nothing_even_inside_a_span(
    provider, temporal_address, nats_url, task_queue
):
    """Negative control: `tracing=False` sends no trace context even from inside a span,
    while the same activity with tracing on does (the check would see it)."""
    off = await run(temporal_address, nats_url, task_queue, "stream_in_own_span", tracing=False)
    on = await run(temporal_address, nats_url, task_queue, "stream_in_own_span")
    off_events = await task_events(nats_url, workflow_exec_id=off)
    on_events = await task_events(nats_url, workflow_exec_id=on)
    assert all(TRACEPARENT not in h for h in await raw_headers(nats_url, off_events))
    assert all(TRACEPARENT in h for h in await raw_headers(nats_url, on_events))
    assert all(e.trace_context is None for e in off_events)
    # The body is the same either way: the trace context is only in the headers.
    assert all("traceparent" not in e.model_dump_json() for e in on_events)
