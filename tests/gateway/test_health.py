"""Health and NATS outages: /readyz follows NATS, every API route answers a JSON 503 while
NATS is away (never a plain-text 500, never a long wait), and streams already open go on
once it is back, losing and repeating nothing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import httpx2 as httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mistral_workflows.dev import NatsServer
from mistral_workflows.gateway import GatewaySettings, create_app
from tests.faults.test_nats_crash import AckRelay
from tests.gateway.gateway_support import Gateway, gateway_process
from tests.gateway.ops_support import STREAM, open_stream, publish, scrape
from tests.support import unique

M = "mistral_workflows_gateway"
ROUTES = [
    (STREAM, {"workflow_exec_id": "wf"}),
    ("/v1/workflows/executions/wf/stream", {}),
    ("/v1/workflows/events/list", {"workflow_exec_id": "wf"}),
]
# The bounds the gateway promises: /readyz turns 503 within 2 s of NATS going down, and
# every route answers within 5 s during an outage.
READY_BOUND = 2.0
ANSWER_BOUND = 5.0


@pytest.fixture
def server(tmp_path) -> Iterator[NatsServer]:
    """A NATS server of this test alone, its store kept across restarts."""
    with NatsServer(store_dir=tmp_path / "nats") as running:
        yield running


@pytest.fixture
def gateway(server: NatsServer) -> Iterator[Gateway]:
    with gateway_process(server.url, None, "--keepalive", "1") as running:
        yield running


async def readiness(http: httpx.AsyncClient, url: str) -> tuple[int, dict[str, str]]:
    response = await http.get(url + "/readyz")
    return response.status_code, response.json()


async def poll_readiness(
    http: httpx.AsyncClient, url: str, status: int, within: float
) -> dict[str, str]:
    """The body of /readyz once it answers `status`, polled for at most `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        got, body = await readiness(http, url)
        if got == status:
            return body
        assert time.monotonic() < deadline, f"/readyz still {got} {body} after {within}s"
        await asyncio.sleep(0.05)


def lost_and_repeated(expected: list[int], got: list[int]) -> tuple[set[int], set[int]]:
    counts = Counter(got)
    return set(expected) - set(got), {s for s, n in counts.items() if n > 1}


async def test_readyz_follows_nats_and_open_streams_go_on(server, gateway):
    """/readyz is 200 with NATS up, 503 `nats_unavailable` within 2 s of its death, and 200
    again once it is back; meanwhile every API route answers a JSON 503 within 5 s (each
    counted in the metrics, the probes' own answers not), /healthz stays 200 and the
    metrics say NATS is disconnected. A stream opened before the outage then delivers the
    events stored before and after it, each once, in order. Negative control: a resume one
    event too early is caught by the same check as a repeat."""
    workflow_id = unique("gw-outage")
    before = await publish(server.url, workflow_id, 3)
    async with httpx.AsyncClient(timeout=ANSWER_BOUND) as http:
        assert await readiness(http, gateway.url) == (200, {"status": "ready"})
        async with open_stream(gateway.url, {"workflow_exec_id": workflow_id}) as stream:
            assert await stream.wait_for_events(3, 30) == before

            server.kill()
            body = await poll_readiness(http, gateway.url, 503, READY_BOUND)
            assert body["error"] == "nats_unavailable" and "disconnected" in body["reason"]
            for path, params in ROUTES:
                # The client's timeout is the bound: a slower answer fails the test.
                response = await http.get(gateway.url + path, params=params)
                assert response.status_code == 503, (path, response.text)
                assert response.headers["content-type"] == "application/json"
                assert response.json()["error"] == "nats_unavailable"
                assert response.headers["retry-after"] == "2"
            samples = await asyncio.to_thread(scrape, gateway.url)
            assert samples[f"{M}_nats_connected"] == 0
            assert samples[f'{M}_errors_total{{kind="nats_unavailable"}}'] == len(ROUTES)
            health = await http.get(gateway.url + "/healthz")
            assert health.status_code == 200
            assert health.json() == {"status": "alive", "nats": "disconnected"}

            server.restart()
            assert await poll_readiness(http, gateway.url, 200, 30) == {"status": "ready"}
            assert (await asyncio.to_thread(scrape, gateway.url))[f"{M}_nats_connected"] == 1
            after = await publish(server.url, workflow_id, 3)
            # A last event after the others: any repeat would come before it, in order.
            last = await publish(server.url, workflow_id, 1)
            expected = before + after + last
            got = await stream.wait_for_events(len(expected), 60)
            assert got == expected
            assert lost_and_repeated(expected, got) == (set(), set())

        # Negative control: a stream resumed one event too early repeats one.
        params = {"workflow_exec_id": workflow_id}
        headers = {"Last-Event-ID": str(before[-2])}
        async with open_stream(gateway.url, params, headers) as again:
            resumed = await again.wait_for_events(len(expected) - 2, 30)
        assert lost_and_repeated(expected, before + resumed) == (set(), {before[-1]})


@contextlib.asynccontextmanager
async def gateway_through(relay: AckRelay) -> AsyncIterator[Gateway]:
    """A gateway whose NATS connection goes through `relay`, started and stopped in a
    thread so that the relay keeps running in this event loop meanwhile."""
    with contextlib.ExitStack() as stack:
        started = gateway_process(relay.url, None, "--keepalive", "1")
        running = await asyncio.to_thread(stack.enter_context, started)
        try:
            yield running
        finally:
            await asyncio.to_thread(stack.close)


async def test_a_jetstream_that_does_not_answer_gets_a_json_503_in_bounded_time(server):
    """With NATS connected but its answers held back, a list request (which waited 30 s for
    JetStream and ended in a plain-text 500 before) is answered a JSON 503
    `jetstream_unavailable` within seconds, /readyz says the same, and both recover once
    the answers flow again."""
    workflow_id = unique("gw-silent")
    await publish(server.url, workflow_id, 2)
    listing = ("/v1/workflows/events/list", {"workflow_exec_id": workflow_id})
    async with (
        AckRelay(server.port) as relay,
        gateway_through(relay) as gateway,
        httpx.AsyncClient(timeout=15) as http,
    ):
        assert (await readiness(http, gateway.url))[0] == 200
        relay.hold()
        try:
            began = time.monotonic()
            response = await http.get(gateway.url + listing[0], params=listing[1])
            took = time.monotonic() - began
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "jetstream_unavailable"
            print(f"answered 503 after {took:.1f}s")
            status, body = await readiness(http, gateway.url)
            assert (status, body["error"]) == (503, "jetstream_unavailable")
        finally:
            relay.release()
        await poll_readiness(http, gateway.url, 200, 30)
        listed = await http.get(gateway.url + listing[0], params=listing[1])
        assert listed.status_code == 200 and len(listed.json()["events"]) == 2


async def test_an_unexpected_failure_is_a_json_500_counted_by_kind(nats_url):
    """A route that fails in a way nobody foresaw answers a JSON 500 `internal_error`
    (never a plain-text page) and counts in the metrics; the route's own error stays in the
    log, not in the answer."""
    app = create_app(GatewaySettings(nats_url=nats_url, secret=None))

    async def broken(request: Request) -> Response:
        raise KeyError("a detail for the log only")

    app.router.routes.append(Route("/v1/broken", broken))
    transport = httpx.ASGITransport(app, client=("127.0.0.1", 1234))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http,
    ):
        response = await http.get("/v1/broken")
        metrics = (await http.get("/metrics")).text
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "internal_error"
    assert "a detail" not in response.text
    assert 'mistral_workflows_gateway_errors_total{kind="internal_error"} 1.0' in metrics
