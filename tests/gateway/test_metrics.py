"""The gateway's Prometheus metrics, scraped from /metrics after a known workload and read
with Prometheus' own text parser."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx2 as httpx
import pytest

from mistral_workflows.gateway._metrics import _event_timestamp
from tests.gateway.gateway_support import Gateway, gateway_process
from tests.gateway.ops_support import STREAM, open_stream, publish, scrape
from tests.support import unique

M = "mistral_workflows_gateway"


@pytest.fixture
def fresh_gateway(nats_url: str) -> Iterator[Gateway]:
    """A gateway of this test alone (its counters start at 0), with no keep-alive comment
    in the time of the test."""
    with gateway_process(nats_url, None, "--keepalive", "600") as running:
        yield running


async def scraped_until(url: str, name: str, value: float, within: float) -> dict[str, float]:
    deadline = time.monotonic() + within
    while (samples := await asyncio.to_thread(scrape, url))[name] != value:
        assert time.monotonic() < deadline, f"{name} is {samples[name]}, not {value}"
        await asyncio.sleep(0.05)
    return samples


async def test_metrics_count_a_known_workload_exactly(fresh_gateway, nats_url):
    """Two streams read 4 and 2 events; three requests are refused. The scrape shows the
    open streams while they are open and 0 after, 6 events and exactly their bytes, the
    delivery lag of each of the 6 in the histogram, and the errors by kind."""
    url = fresh_gateway.url
    one, two = unique("gw-metrics"), unique("gw-metrics")
    await publish(nats_url, one, 4)
    await publish(nats_url, two, 2)
    sent = 0
    async with (
        open_stream(url, {"workflow_exec_id": one}) as first,
        open_stream(url, {"workflow_exec_id": two}) as second,
    ):
        await first.wait_for_events(4, 30)
        await second.wait_for_events(2, 30)
        open_now = await scraped_until(url, f"{M}_open_streams", 2, 10)
        assert open_now[f"{M}_events_served_total"] == 6
        for stream in (first, second):
            sent += sum(
                len(block.encode()) + 2 for block in stream.blocks if "workflow.event" in block
            )
    samples = await scraped_until(url, f"{M}_open_streams", 0, 10)
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(2):
            assert (await http.get(url + STREAM)).status_code == 422  # no execution id
        assert (await http.get(url + "/v1/nope")).status_code == 404
    samples = await asyncio.to_thread(scrape, url)

    assert samples[f"{M}_events_served_total"] == 6
    assert samples[f"{M}_event_bytes_total"] == sent
    assert samples[f"{M}_delivery_lag_seconds_count"] == 6
    assert samples[f'{M}_delivery_lag_seconds_bucket{{le="+Inf"}}'] == 6
    assert samples[f"{M}_delivery_lag_seconds_sum"] > 0
    errors = {k: v for k, v in samples.items() if k.startswith(f"{M}_errors_total")}
    assert errors == {
        f'{M}_errors_total{{kind="invalid_request"}}': 2,
        f'{M}_errors_total{{kind="not_found"}}': 1,
    }


async def test_stored_events_show_their_age_as_lag(fresh_gateway, nats_url):
    """An event stored a while ago is delivered with at least that lag: the histogram
    measures from the producer's timestamp, not from the read."""
    workflow_id = unique("gw-lag")
    await publish(nats_url, workflow_id, 1)
    await asyncio.sleep(0.6)
    async with open_stream(fresh_gateway.url, {"workflow_exec_id": workflow_id}) as stream:
        await stream.wait_for_events(1, 30)
        samples = await asyncio.to_thread(scrape, fresh_gateway.url)
    assert samples[f"{M}_delivery_lag_seconds_count"] == 1
    assert samples[f'{M}_delivery_lag_seconds_bucket{{le="0.5"}}'] == 0
    assert samples[f"{M}_delivery_lag_seconds_sum"] >= 0.6


@pytest.mark.parametrize(
    ("data", "seconds"),
    [
        (b'{"stream":"s","data":{"event_id":"a","event_timestamp":1500000000,"x":1}}', 1.5),
        (b'{"data": {"event_timestamp" : 2000000000}}', 2.0),  # spaced: parsed instead
        (b'{"data":{"event_id":"\\"event_timestamp\\":9","event_timestamp":3000000000}}', 3.0),
        (b'{"data":{"event_timestamp":"soon"}}', None),
        (b"not json", None),
    ],
)
def test_the_lag_reads_the_event_timestamp_of_the_envelope(data, seconds):
    """The digits after the envelope's `event_timestamp` key are read without parsing; a
    key inside a string is not taken for it, and anything else is parsed or left out."""
    assert _event_timestamp(data) == seconds
