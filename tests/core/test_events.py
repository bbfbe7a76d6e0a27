"""What lands on NATS: the reference envelope, accepted by the official client's models."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from examples.progress import ProgressWorkflow, streaming_tokens_with_progress_activity
from examples.token_stream import ChatWorkflow, chat_activity
from mistral_workflows import StreamEvent
from mistral_workflows.core.events import EventType
from tests.support import (
    collect,
    official_models,
    plugged_client,
    raw_messages,
    rebuilt,
    running_worker,
    task_events,
    types,
    unique,
)
from tests.workflows import Call, RunActivity

HOSTILE_IDS = [
    "a.b.c",
    "tenantB.>",
    "x * y",
    "line\nbreak",
    "$JS.API.x",
    "é" * 40 + "🙂",
    "z" * 1000,
]


async def run_examples(temporal_address, nats_url, task_queue) -> tuple[str, str, dict, dict]:
    client = await plugged_client(temporal_address, nats_url)
    chat, progress = unique("chat"), unique("progress")
    async with running_worker(
        client,
        task_queue,
        [ChatWorkflow, ProgressWorkflow],
        [chat_activity, streaming_tokens_with_progress_activity],
    ):
        answer = await client.execute_workflow(
            ChatWorkflow.run, "hi", id=chat, task_queue=task_queue
        )
        outcome = await client.execute_workflow(
            ProgressWorkflow.run, "one two three", id=progress, task_queue=task_queue
        )
    return chat, progress, answer, outcome


async def test_reference_examples_match_the_official_models(temporal_address, nats_url, task_queue):
    """Every message of both reference examples parses as the official client's event type."""
    chat, progress, *_ = await run_examples(temporal_address, nats_url, task_queue)
    for exec_id in (chat, progress):
        assert len(await official_models(nats_url, workflow_exec_id=exec_id)) > 3


async def test_reference_examples_rebuild_to_the_activity_result(
    temporal_address, nats_url, task_queue
):
    """The consumer rebuilds both reference tasks to exactly what the activities returned."""
    chat, progress, answer, outcome = await run_examples(temporal_address, nats_url, task_queue)
    (tokens,) = rebuilt(await collect(nats_url, workflow_exec_id=chat))
    assert "".join(tokens.state["tokens"]) == answer["response"]
    events = await task_events(nats_url, workflow_exec_id=progress)
    (bar,) = rebuilt(events)
    assert bar.state == {
        "processed_words": ["one", "two", "three"],
        "progress_idx": 3,
        "progress_total": 3,
    }
    assert outcome["token_count"] == 3
    assert {e.activity_context.activity_name for e in events} == {
        "Processing text with explicit control"
    }


async def test_envelope_fields(temporal_address, nats_url, task_queue):
    """The envelope carries stream, timestamps, ids, context and our sequence fields."""
    chat, *_ = await run_examples(temporal_address, nats_url, task_queue)
    tokens = [
        m
        for m in await raw_messages(nats_url, workflow_exec_id=chat)
        if m[1]["stream"] == "token-stream"
    ]
    (_, first), (_, second) = tokens[:2]
    assert first["stream"] == "token-stream" and first["timestamp"].endswith("Z")
    data = first["data"]
    assert isinstance(data["event_timestamp"], int) and data["event_timestamp"] > 1.7e18
    assert data["parent_workflow_exec_id"] is None and data["root_workflow_exec_id"] == chat
    assert first["workflow_context"]["namespace"] == "default"
    assert first["metadata"] == {}
    assert data["attributes"]["task_sequence"] == 0
    assert second["data"]["attributes"]["task_sequence"] == 1
    assert data["event_id"] != second["data"]["event_id"]


@pytest.mark.parametrize("hostile", HOSTILE_IDS, ids=range(len(HOSTILE_IDS)))
async def test_hostile_workflow_ids_stream_and_stay_apart(
    temporal_address, nats_url, task_queue, hostile
):
    """A hostile workflow id streams normally and its filter matches only its own events."""
    client = await plugged_client(temporal_address, nats_url)
    neighbour = f"n-{hostile[:990]}"  # Temporal caps ids at 1,000 characters.
    async with running_worker(client, task_queue, [RunActivity], [chat_activity]):
        await asyncio.gather(
            *(
                client.execute_workflow(
                    RunActivity.run, Call("chat_activity", [[]]), id=wid, task_queue=task_queue
                )
                for wid in (hostile, neighbour)
            )
        )
    own = await collect(nats_url, workflow_exec_id=hostile)
    other = await collect(nats_url, workflow_exec_id=neighbour)
    assert own and other
    assert {e.data.workflow_exec_id for e in own} == {hostile}
    assert {e.data.workflow_exec_id for e in other} == {neighbour}
    assert types(own)[-1] == EventType.WORKFLOW_EXECUTION_COMPLETED


def test_stream_event_round_trips():
    """A parsed event serialises back to the same envelope plus broker_sequence."""
    body = {
        "stream": "s",
        "timestamp": "2026-05-04T10:30:00.123456Z",
        "data": {
            "event_type": EventType.CUSTOM_TASK_IN_PROGRESS,
            "event_id": "e",
            "event_timestamp": 1,
            "workflow_name": "w",
            "workflow_exec_id": "x",
            "root_workflow_exec_id": "x",
            "parent_workflow_exec_id": None,
            "workflow_run_id": "r",
            "attributes": {
                "custom_task_id": "t",
                "custom_task_type": "s",
                "task_sequence": 1,
                "payload": {
                    "type": "json_patch",
                    "value": [{"op": "add", "path": "/a", "value": 1}],
                },
            },
        },
        "workflow_context": {"namespace": "n", "workflow_name": "w", "workflow_exec_id": "x"},
        "metadata": {},
    }
    event = StreamEvent.model_validate(body)
    again = StreamEvent.model_validate_json(event.model_dump_json())
    assert again == event
    assert list(itertools.chain(again.data.attributes.payload.value)) == [
        {"op": "add", "path": "/a", "value": 1}
    ]
