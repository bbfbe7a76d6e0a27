"""A client resuming by Last-Event-ID on a stream that was recreated (its sequences
restarted) is told so with a `gap` event, whose id is its new position, then gets the new
stream's events; the live page shows the notice and goes on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Iterator

import pytest

from mistral_workflows import Gap, StreamEvent
from mistral_workflows.core.events import EventType
from mistral_workflows.dev import NatsServer
from mistral_workflows.gateway._outbox import ReadAhead
from mistral_workflows.gateway._sse import EventPump, event_message
from tests.consumer.test_recreated_stream import delete_stream
from tests.consumer.test_resume import publish
from tests.consumer.test_subscribe import lifecycle_event
from tests.gateway.gateway_support import Gateway, gateway_process, raw_sse
from tests.gateway.test_live_page import _install_chromium, browser_page
from tests.support import unique

STREAM = "/v1/workflows/events/stream"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A server of this module's own: its test deletes the stream."""
    with NatsServer(store_dir=tmp_path_factory.mktemp("recreated-gw")) as running:
        yield running


@pytest.fixture(scope="module")
def gateway(server: NatsServer) -> Iterator[Gateway]:
    with gateway_process(server.url, None, "--keepalive", "1") as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> str:
    """The path of a Chromium to drive (skips when none can be had)."""
    return _install_chromium()


def messages(blocks: list[str]) -> list[tuple[str, str, dict[str, object]]]:
    """(event, id, data) of each SSE message, comments left out."""
    found = []
    for block in blocks:
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            found.append((lines["event"], lines.get("id", ""), json.loads(lines["data"])))
    return found


async def test_resume_by_last_event_id_on_a_recreated_stream(server, gateway):
    """Last-Event-ID past the end of a recreated stream gets a `gap` event (id 0, the
    official client's error shape) and the new events; resuming from that id, or at the
    end of the new stream, gets no notice (negative control)."""
    wid = unique("gw-recreated")
    await delete_stream(server.url)
    await publish(server.url, wid, 0, 10)  # sequences 1..10
    await delete_stream(server.url)
    await publish(server.url, wid, 10, 3)  # a new stream: sequences 1..3
    url, params = f"{gateway.url}{STREAM}", {"workflow_exec_id": wid}
    got = messages(await raw_sse(url, params, {"Last-Event-ID": "10"}, idle=2))
    (kind, gap_id, notice), *events = got
    assert (kind, gap_id, notice["error"]) == ("gap", "0", "stream_recreated")
    assert "recreated" in str(notice["reason"])
    assert [(kind, seq) for kind, seq, _ in events] == [("workflow.event", s) for s in "123"]
    for resume_at in ("0", "3"):
        again = messages(await raw_sse(url, params, {"Last-Event-ID": resume_at}, idle=1))
        assert "gap" not in [kind for kind, _, _ in again]
        assert len(again) == 3 - int(resume_at)


def stream_event(seq: int) -> StreamEvent:
    """A stored event as the reader yields it, with broker sequence `seq`."""
    event = StreamEvent.model_validate(lifecycle_event("w", EventType.WORKFLOW_EXECUTION_STARTED))
    event.broker_sequence = seq
    return event


async def test_a_recreation_notice_waits_for_room_behind_a_full_read_ahead():
    """A client so far behind that the read-ahead is full when the stream turns out to be
    recreated still gets the notice, after the old events and before the new ones."""
    behind = 20
    size = len(event_message(stream_event(1)))
    # Room for a few events only: the reading waits for room long before the notice.
    pump = EventPump(lambda event: True, 60, ReadAhead(client_bytes=3 * size, total_bytes=1 << 20))
    noticed = asyncio.Event()

    async def source() -> AsyncGenerator[StreamEvent, None]:
        for seq in range(1, behind + 1):
            yield stream_event(seq)
        pump.on_gap(Gap(behind + 1, 1, recreated=True))
        noticed.set()
        for seq in (1, 2):
            yield stream_event(seq)

    pump.start(source())
    body = pump.body()
    try:
        assert await anext(body) == b": connected\n\n"
        blocks = [await anext(body) for _ in range(behind + 3)]
        assert noticed.is_set()
    finally:
        await body.aclose()
        await pump.stop()
    got = messages([block.decode().rstrip("\n") for block in blocks])
    assert [(kind, seq) for kind, seq, _ in got[behind - 1 :]] == [
        ("workflow.event", str(behind)),
        ("gap", "0"),
        ("workflow.event", "1"),
        ("workflow.event", "2"),
    ]


async def test_live_page_goes_on_after_the_stream_is_recreated(server, gateway, browser):
    """The live page, told that its stream was recreated, shows the notice and applies the
    new stream's events, although their sequences are lower than those it applied."""
    wid = unique("page-recreated")
    await delete_stream(server.url)
    await publish(server.url, wid, 0, 5)
    async with browser_page(browser) as page:
        await page.goto(f"{gateway.url}/ui/executions/{wid}")
        applied = "(n) => window.liveView.applied.length === n"
        await page.wait_for_function(applied, arg=5, timeout=30_000)
        await delete_stream(server.url)
        await publish(server.url, wid, 5, 3)
        await page.wait_for_function(applied, arg=8, timeout=30_000)
        view = await page.evaluate(
            """() => ({applied: window.liveView.applied, gaps: window.liveView.gaps,
                       connection: document.getElementById("connection").textContent})"""
        )
    assert view["applied"] == [1, 2, 3, 4, 5, 1, 2, 3]
    (notice,) = view["gaps"]
    assert "recreated" in notice
    assert "recreated" in view["connection"]
