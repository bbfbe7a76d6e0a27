"""The gateway passes an event's trace context on as SSE fields that EventSource ignores."""

from __future__ import annotations

import httpx2 as httpx
from opentelemetry.sdk.trace import TracerProvider

import mistral_workflows as workflows
from mistral_workflows.core.envelope import envelope
from mistral_workflows.core.events import EventType, StreamEvent
from mistral_workflows.core.task import Task
from mistral_workflows.gateway._sse import event_message
from tests.gateway.gateway_support import completed, read_until
from tests.support import plugged_client, running_worker, unique
from tests.workflows import Call, RunActivity

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def an_event(trace: dict[str, str] | None) -> StreamEvent:
    origin = {
        "workflow_name": "W",
        "workflow_exec_id": "w1",
        "root_workflow_exec_id": "w1",
        "parent_workflow_exec_id": None,
        "workflow_run_id": "run",
    }
    body = envelope(
        stream="notes",
        event_type=EventType.CUSTOM_TASK_STARTED,
        event_id="id-1",
        attributes={"custom_task_id": "t", "custom_task_type": "notes"},
        origin=origin,
        workflow_context={"namespace": "default", **origin},
        activity_context=None,
    )
    event = StreamEvent.model_validate(body)
    event.broker_sequence, event.trace_context = 7, trace
    return event


def fields(message: bytes) -> dict[str, str]:
    """The fields of one SSE message, as an SSE parser splits them."""
    lines = message.decode().strip("\n").split("\n")
    return dict(line.split(": ", 1) for line in lines)


def test_the_trace_context_goes_as_fields_beside_an_unchanged_data_line():
    """`traceparent` and `tracestate` are fields of the message; `data` is the same JSON."""
    plain = an_event(None)
    traced = plain.model_copy(
        update={"trace_context": {"traceparent": TRACEPARENT, "tracestate": "v=1"}}
    )
    got = fields(event_message(traced))
    assert got["traceparent"] == TRACEPARENT and got["tracestate"] == "v=1"
    assert got["data"] == fields(event_message(plain))["data"]
    assert got["id"] == "7" and got["event"] == "workflow.event"


def test_no_trace_context_adds_no_field():
    """Negative control: an event without trace context has only the usual fields."""
    assert set(fields(event_message(an_event(None)))) == {"event", "id", "data"}
    assert "traceparent" not in fields(event_message(an_event({"tracestate": "x\nid: 9"})))


@workflows.activity()
async def traced_notes() -> str:
    with TracerProvider().get_tracer("test").start_as_current_span("notes") as span:
        async with Task(type="notes", state={"n": 0}) as task:
            await task.update_state({"n": 1})
    return format(span.get_span_context().span_id, "016x")


async def test_clients_read_a_traced_stream_through_the_gateway(
    gateway, nats_url, temporal_address, task_queue
):
    """Through the gateway, the task events of a traced activity carry its span in their
    `traceparent` field, and the official client parses every message of the same stream."""
    wid = unique("gw-traced")
    client = await plugged_client(temporal_address, nats_url)
    async with running_worker(client, task_queue, [RunActivity], [traced_notes]):
        span_id = await client.execute_workflow(
            RunActivity.run, Call("traced_notes"), id=wid, task_queue=task_queue
        )
    url = f"{gateway.url}/v1/workflows/events/stream"
    seen: list[str] = []
    async with httpx.AsyncClient(timeout=30) as http:
        query = {"workflow_exec_id": wid, "stream": "notes"}
        async with http.stream("GET", url, params=query) as response:
            async for line in response.aiter_lines():
                if line.startswith("traceparent: "):
                    seen.append(line.split("-")[2])
                if line.startswith("data: ") and "CUSTOM_TASK_COMPLETED" in line:
                    break
    assert seen and set(seen) == {span_id}
    async with gateway.client() as official:
        stream = await official.workflows.events.get_stream_events_async(workflow_exec_id=wid)
        messages = await read_until(stream, completed(wid))
    assert messages and all(m.event == "workflow.event" for m in messages)
    assert {m.data.data.event_type for m in messages} >= {EventType.CUSTOM_TASK_COMPLETED}
