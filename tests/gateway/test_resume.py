"""Resuming by Last-Event-ID loses and repeats nothing."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.gateway.gateway_support import (
    chat_worker,
    completed,
    ids_of,
    raw_sse,
    read_until,
    sequences,
    start_chat,
)
from tests.support import collect, unique

STREAM = "/v1/workflows/events/stream"


def lost_and_repeated(expected: list[int], got: list[int]) -> tuple[set[int], set[int]]:
    """The sequences missing from `got`, and those it has more than once."""
    counts = Counter(got)
    return set(expected) - set(got), {s for s, n in counts.items() if n > 1}


async def test_resume_mid_stream_with_last_event_id(
    gateway, nats_url, temporal_address, task_queue
):
    """A client that drops after a few events and resumes with last_event_id (the official
    client's Last-Event-ID header) gets every event once; resuming one event too early or
    too late is caught by the same check (negative control)."""
    workflow_id = unique("gw-resume")
    async with (
        gateway.client() as client,
        chat_worker(temporal_address, nats_url, task_queue) as temporal,
    ):
        stream = await client.workflows.events.get_stream_events_async(workflow_exec_id=workflow_id)
        first_part = asyncio.create_task(read_until(stream, _nth(5), idle=30))
        handle = await start_chat(temporal, task_queue, workflow_id)
        first = sequences(await asyncio.wait_for(first_part, 30))
        stream = await client.workflows.events.get_stream_events_async(
            workflow_exec_id=workflow_id, last_event_id=str(first[-1])
        )
        rest = sequences(await read_until(stream, completed(workflow_id), idle=30))
        await handle.result()
        stored = await collect(nats_url, workflow_exec_id=workflow_id)
        expected = [e.broker_sequence for e in stored]
        assert lost_and_repeated(expected, first + rest) == (set(), set())
        assert first + rest == expected
        # Negative control: the check sees a repeat, and a loss, when they happen.
        for resume_after, lost, repeated in (
            (first[-2], set(), {first[-1]}),
            (rest[0], {rest[0]}, set()),
        ):
            stream = await client.workflows.events.get_stream_events_async(
                workflow_exec_id=workflow_id, last_event_id=str(resume_after)
            )
            again = sequences(await read_until(stream, completed(workflow_id)))
            assert lost_and_repeated(expected, first + again) == (lost, repeated)


def _nth(n: int):  # type: ignore[no-untyped-def]
    seen: list[object] = []

    def done(message: object) -> bool:
        seen.append(message)
        return len(seen) >= n

    return done


async def test_every_form_of_last_event_id_resumes_after_it(
    gateway, nats_url, temporal_address, task_queue
):
    """The Last-Event-ID header (what browsers send), last-event-id and last_event_id
    query parameters each resume right after the given sequence; start_seq is inclusive."""
    workflow_id = unique("gw-resume-forms")
    async with chat_worker(temporal_address, nats_url, task_queue) as temporal:
        await (await start_chat(temporal, task_queue, workflow_id)).result()
    expected = [e.broker_sequence for e in await collect(nats_url, workflow_exec_id=workflow_id)]
    after = expected[len(expected) // 2]
    url = gateway.url + STREAM
    base = {"workflow_exec_id": workflow_id}
    forms = [
        (base, {"Last-Event-ID": str(after)}),
        ({**base, "last-event-id": str(after)}, None),
        ({**base, "last_event_id": str(after)}, None),
        ({**base, "start_seq": str(after + 1)}, None),
        # A browser reconnecting keeps its URL's start_seq and sends the header: the
        # header wins.
        ({**base, "start_seq": "1"}, {"Last-Event-ID": str(after)}),
    ]
    results = await asyncio.gather(*(raw_sse(url, params, headers) for params, headers in forms))
    for (params, headers), blocks in zip(forms, results, strict=True):
        assert ids_of(blocks) == [s for s in expected if s > after], (params, headers)
