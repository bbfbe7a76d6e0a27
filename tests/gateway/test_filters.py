"""Filters return exactly the matching events; every value is data; bad input is a 422."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

import httpx2 as httpx
import nats
import pytest
from mistralai.client import errors
from starlette.datastructures import Headers, QueryParams

from mistral_workflows.consumer import _subscribe, subscribe
from mistral_workflows.core import subjects
from mistral_workflows.gateway._query import stream_query
from mistral_workflows.worker import StreamSettings, provision
from tests.gateway.gateway_support import (
    chat_worker,
    foreign_event,
    ids_of,
    raw_sse,
    read_until,
    start_chat,
)
from tests.support import collect, unique

STREAM = "/v1/workflows/events/stream"


async def _read(client, **filters):  # type: ignore[no-untyped-def]
    stream = await client.workflows.events.get_stream_events_async(**filters)
    return [m.data for m in await read_until(stream) if m.event == "workflow.event"]


async def test_filters_return_exactly_the_matching_events(
    gateway, nats_url, temporal_address, task_queue
):
    """Each filter of the official client gives the events of the whole execution that
    match it, no more, no fewer, in order."""
    workflow_id = unique("gw-filters")
    async with chat_worker(temporal_address, nats_url, task_queue) as temporal:
        await (await start_chat(temporal, task_queue, workflow_id)).result()
    every = await collect(nats_url, workflow_exec_id=workflow_id)
    activity_id = next(e.activity_context for e in every if e.activity_context).activity_id
    middle = every[len(every) // 2].broker_sequence
    kinds = ["CUSTOM_TASK_IN_PROGRESS", "WORKFLOW_EXECUTION_COMPLETED"]
    async with gateway.client() as client:
        got = await _read(client, workflow_exec_id=workflow_id)
        assert [e.broker_sequence for e in got] == [e.broker_sequence for e in every]
        cases = {
            "stream": ({"stream": "token-stream"}, lambda e: e.stream == "token-stream"),
            "lifecycle": ({"stream": "_lifecycle"}, lambda e: e.stream == "_lifecycle"),
            "workflow scope": ({"scope": "workflow"}, lambda e: not e.activity_context),
            "activity scope": ({"scope": "activity"}, lambda e: bool(e.activity_context)),
            "activity name": (
                {"activity_name": "chat_activity"},
                lambda e: bool(e.activity_context),
            ),
            "activity id": (
                {"activity_id": activity_id},
                lambda e: getattr(e.activity_context, "activity_id", None) == activity_id,
            ),
            "other activity id": ({"activity_id": activity_id + "0"}, lambda e: False),
            "event types": (
                {"workflow_event_types": kinds},
                lambda e: e.data.event_type in kinds,
            ),
            "workflow name": ({"workflow_name": "ChatWorkflow"}, lambda e: True),
            "other workflow name": ({"workflow_name": "Other"}, lambda e: False),
            "root": ({"root_workflow_exec_id": workflow_id}, lambda e: True),
            "start_seq": ({"start_seq": middle}, lambda e: e.broker_sequence >= middle),
            "no parent match": ({"parent_workflow_exec_id": workflow_id}, lambda e: False),
        }
        results = await asyncio.gather(
            *(_read(client, workflow_exec_id=workflow_id, **f) for f, _ in cases.values())
        )
    for (name, (_, keeps)), got in zip(cases.items(), results, strict=True):
        expected = [e.broker_sequence for e in every if keeps(e)]
        assert [e.broker_sequence for e in got] == expected, name
        assert len(expected) < len(every) or name in ("workflow name", "root"), name


async def test_filter_values_are_data_not_wildcards(
    gateway, nats_url, temporal_address, task_queue
):
    """Ids holding `.`, `*` and `>` select exactly their own execution: a value can never
    widen the subject filter to other executions (the plain id is the control)."""
    plain = unique("gw-inject")
    hostile = plain + ".*.>"
    async with chat_worker(temporal_address, nats_url, task_queue) as temporal:
        for workflow_id in (plain, hostile):
            await (await start_chat(temporal, task_queue, workflow_id)).result()
    patterns = (">", "*.>", plain + ".>", plain[:-2] + "*", "gw-inject-*")
    async with gateway.client() as client:
        reads = [_read(client, workflow_exec_id=w) for w in (plain, hostile)]
        reads += [_read(client, root_workflow_exec_id=w) for w in (plain, hostile)]
        reads += [_read(client, workflow_exec_id=p) for p in patterns]
        results = await asyncio.gather(*reads)
    pairs = zip((plain, hostile), results[:2], results[2:4], strict=True)
    for workflow_id, by_exec, by_root in pairs:
        assert by_exec and {e.data.workflow_exec_id for e in by_exec} == {workflow_id}
        assert by_root and {e.data.root_workflow_exec_id for e in by_root} == {workflow_id}
    assert results[4:] == [[]] * len(patterns)


async def test_metadata_filters_in_both_forms(gateway, nats_url):
    """metadata_filters as a JSON object and as top-level parameters (the official
    client's form) keep the events whose metadata has every given value."""
    workflow_id = unique("gw-meta")
    nc = await nats.connect(nats_url)
    try:
        await provision(nc.jetstream(), StreamSettings())
        for metadata in ({"tenant": "acme", "n": 2}, {"tenant": "other"}, {}):
            await nc.jetstream().publish(*foreign_event(workflow_id, "Foreign", metadata))
    finally:
        await nc.close()
    seqs = [e.broker_sequence for e in await collect(nats_url, workflow_exec_id=workflow_id)]
    assert len(seqs) == 3
    url = gateway.url + STREAM
    base = {"workflow_exec_id": workflow_id}
    as_json = [('{"tenant": "acme"}', [seqs[0]]), ('{"n": 3}', []), ('{"n": 2}', [seqs[0]])]
    top_level = [
        ({"tenant": "acme"}, [seqs[0]]),
        ({"tenant": "other"}, [seqs[1]]),
        ({"n": 2}, [seqs[0]]),
        ({"tenant": "acme", "n": 3}, []),
        ({}, seqs),
    ]
    async with gateway.client() as client:
        results = await asyncio.gather(
            *(raw_sse(url, {**base, "metadata_filters": raw}) for raw, _ in as_json),
            *(_read(client, **base, metadata_filters=f) for f, _ in top_level),
        )
    for (raw, expected), blocks in zip(as_json, results, strict=False):
        assert ids_of(blocks) == expected, raw
    for (filters, expected), got in zip(top_level, results[len(as_json) :], strict=True):
        assert [e.broker_sequence for e in got] == expected, filters


@pytest.mark.parametrize(
    ("params", "headers", "named"),
    [
        ({}, None, "workflow_exec_id"),
        ({"workflow_name": "ChatWorkflow"}, None, "workflow_exec_id"),
        ({"workflow_exec_id": "x", "scope": "tasks"}, None, "scope"),
        ({"workflow_exec_id": "x", "stream": "a.b"}, None, "stream"),
        ({"workflow_exec_id": "x", "workflow_event_types": "NOPE"}, None, "workflow_event_types"),
        ({"workflow_exec_id": "x", "start_seq": "-1"}, None, "start_seq"),
        ({"workflow_exec_id": "x", "start_seq": "ten"}, None, "start_seq"),
        ({"workflow_exec_id": "x"}, {"Last-Event-ID": "abc"}, "Last-Event-ID"),
        ({"workflow_exec_id": "x", "last_event_id": "-3"}, None, "last_event_id"),
        ({"workflow_exec_id": "x", "metadata_filters": "{nope"}, None, "metadata_filters"),
        ({"workflow_exec_id": "x", "metadata_filters": "[1]"}, None, "metadata_filters"),
        ({"workflow_exec_id": ["x", "y"]}, None, "workflow_exec_id"),
        ({"workflow_exec_id": ""}, None, "workflow_exec_id"),
    ],
)
async def test_bad_stream_requests_are_422_naming_the_parameter(gateway, params, headers, named):
    """Every bad parameter gets a 422 whose JSON body names it, before any streaming."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(gateway.url + STREAM, params=params, headers=headers)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["reason"].startswith(named + ":")
    assert body["detail"][0]["loc"] == ["query", named]


async def test_bad_requests_of_the_other_routes(gateway):
    """The list route and unknown routes answer with a JSON error too."""
    async with httpx.AsyncClient(timeout=10) as http:
        for path, params, status, named in (
            ("/v1/workflows/events/list", {}, 422, "root_workflow_exec_id"),
            ("/v1/workflows/events/list", {"workflow_exec_id": "x", "limit": "0"}, 422, "limit"),
            ("/v1/workflows/events/list", {"workflow_exec_id": "x", "cursor": "z"}, 422, "cursor"),
            ("/v1/workflows/executions/x/stream", {"event_source": "DISK"}, 422, "event_source"),
            ("/v1/nothing", {}, 404, "GET /v1/nothing"),
        ):
            response = await http.get(gateway.url + path, params=params)
            assert response.status_code == status, path
            assert response.json()["reason"].startswith(named), response.json()


async def test_official_client_raises_its_validation_error(gateway):
    """The official client parses our 422 as its HTTPValidationError."""
    async with gateway.client() as client:
        with pytest.raises(errors.HTTPValidationError) as caught:
            await client.workflows.events.get_stream_events_async(workflow_name="ChatWorkflow")
    assert caught.value.data.detail[0].loc == ["query", "workflow_exec_id"]


class _Read(Exception):
    """Raised in place of reading: carries the subject filters `subscribe` would read."""


def _subscribed_filters(monkeypatch: pytest.MonkeyPatch, **filters: Any) -> list[str]:
    """The subject filters `subscribe(**filters)` reads, captured before any I/O."""

    def reader(
        nc: object, stream: str, subject_filters: list[str], *_: object, **__: object
    ) -> None:
        raise _Read(subject_filters)

    monkeypatch.setattr(_subscribe, "Reader", reader)
    with pytest.raises(_Read) as read:
        asyncio.run(anext(subscribe(object(), **filters)))  # type: ignore[arg-type]
    return list(read.value.args[0])


@pytest.mark.parametrize(
    "filters",
    [
        {"workflow_exec_id": "a.b"},
        {"root_workflow_exec_id": "tenantB.>", "namespace": "default", "scope": "workflow"},
        {"parent_workflow_exec_id": "p", "stream": "token-stream", "workflow_name": "W"},
        {"workflow_exec_id": "x", "activity_name": "act", "activity_id": "7"},
        {"workflow_exec_id": "x", "scope": "activity", "stream": subjects.LIFECYCLE_STREAM},
    ],
    ids=str,
)
def test_gateway_query_and_subscribe_give_the_same_subject_filter(monkeypatch, filters):
    """The same filters as query parameters of the gateway and as keywords of `subscribe`
    select the same subject filter, so both read exactly the same events."""
    query = stream_query(QueryParams(filters), Headers())
    from_query = query.filter.subject(subjects.DEFAULT_PREFIX)
    assert _subscribed_filters(monkeypatch, **filters) == [from_query]
    assert _subscribed_filters(monkeypatch, **asdict(query.filter)) == [from_query]
