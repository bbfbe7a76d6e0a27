"""Hostile query values, headers and tokens get a 4xx problem naming what is wrong, before
any stream opens and before any JetStream consumer is made."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx2 as httpx
import nats
import pytest

from mistral_workflows.core import subjects
from mistral_workflows.gateway import mint_token
from mistral_workflows.worker import StreamSettings, provision
from tests.gateway.gateway_support import SECRET
from tests.support import unique

STREAM = "/v1/workflows/events/stream"
LIST = "/v1/workflows/events/list"
HUGE = "9" * 5000
TOO_BIG = str(2**64)
DEEP = '{"a":' + "[" * 2000 + "]" * 2000 + "}"

# (route, parameters, headers, the name the reason must give)
HOSTILE: list[tuple[str, dict[str, str], dict[str, str], str]] = [
    (STREAM, {}, {"Last-Event-ID": HUGE}, "Last-Event-ID"),
    (STREAM, {"last_event_id": HUGE}, {}, "last_event_id"),
    (STREAM, {"last-event-id": "²"}, {}, "last-event-id"),
    (STREAM, {"last_event_id": str(2**64 - 1)}, {}, "last_event_id"),
    (STREAM, {"start_seq": TOO_BIG}, {}, "start_seq"),
    (STREAM, {"start_seq": HUGE}, {}, "start_seq"),
    (STREAM, {"start_seq": "\u0661\u0662"}, {}, "start_seq"),
    (STREAM, {"metadata_filters": DEEP}, {}, "metadata_filters"),
    (STREAM, {"metadata_filters": '{"a":' + "[" * 40 + "]" * 40 + "}"}, {}, "metadata_filters"),
    (LIST, {"cursor": "²"}, {}, "cursor"),
    (LIST, {"cursor": HUGE}, {}, "cursor"),
    (LIST, {"cursor": TOO_BIG}, {}, "cursor"),
    (LIST, {"limit": "\u0661\u0660"}, {}, "limit"),
]


@pytest.fixture(scope="module")
async def consumers(nats_url):
    """Counts the consumers of the event stream (provisioned as a worker would)."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await provision(js, StreamSettings())

    async def count() -> int:
        info = await js.stream_info(subjects.DEFAULT_STREAM_NAME)
        return info.state.consumer_count

    yield count
    await nc.close()


async def _refused(url: str, path: str, params: dict[str, str], headers: dict[str, str]) -> Any:
    async with (
        httpx.AsyncClient(timeout=10) as http,
        http.stream("GET", url + path, params=params, headers=headers) as response,
    ):
        assert 400 <= response.status_code < 500, (path, params, response.status_code)
        assert response.headers["content-type"] == "application/json"
        return json.loads(await response.aread())


@pytest.mark.parametrize(("path", "params", "headers", "name"), HOSTILE)
async def test_hostile_values_get_a_4xx_naming_them(
    gateway, consumers, path, params, headers, name
):
    """Over-long, non-ASCII, beyond-uint64 and deeply nested values: 422 naming the
    parameter, and no consumer made."""
    before = await consumers()
    body = await _refused(gateway.url, path, {"workflow_exec_id": unique("x"), **params}, headers)
    assert body["error"] == "invalid_request"
    assert body["reason"].startswith(f"{name}: ")
    assert await consumers() <= before


async def test_the_highest_sequences_jetstream_accepts_are_served(gateway):
    """The largest start and resume point JetStream takes still open a stream (control)."""
    for params in ({"start_seq": str(2**64 - 1)}, {"last_event_id": str(2**64 - 2)}):
        query = {"workflow_exec_id": unique("x"), **params}
        async with (
            httpx.AsyncClient(timeout=10) as http,
            http.stream("GET", gateway.url + STREAM, params=query) as response,
        ):
            assert response.status_code == 200, params


def _part(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_a_token_with_a_deeply_nested_header_gets_401(secured_gateway, consumers):
    """A token whose header is JSON nested 2,000 deep, read before the signature is checked,
    is a 401 naming the token; a valid token gets 200 (control)."""
    good = mint_token(SECRET.encode(), "default", ttl=60)
    _, claims, signature = good.split(".")
    nested = f"{_part(b'[' * 2000 + b']' * 2000)}.{claims}.{signature}"
    params = {"workflow_exec_id": unique("x")}
    before = await consumers()
    body = await _refused(
        secured_gateway.url, STREAM, params, {"Authorization": f"Bearer {nested}"}
    )
    assert body["error"] == "unauthorized"
    assert "token" in body["reason"]
    assert await consumers() <= before
    async with (
        httpx.AsyncClient(timeout=10) as http,
        http.stream(
            "GET",
            secured_gateway.url + STREAM,
            params=params,
            headers={"Authorization": f"Bearer {good}"},
        ) as response,
    ):
        assert response.status_code == 200
