"""Catch-up pages: complete pages are final and the same bytes everywhere; the growing page
is never final."""

from __future__ import annotations

import asyncio

from examples import gateway_catchup
from tests.gateway.gateway_support import gateway_process, ids_of, raw_sse
from tests.gateway.page_support import PAGES, get_page, publish, sequences_of, walk
from tests.support import collect, unique


async def test_complete_pages_are_byte_identical_across_gateway_restarts(nats_url):
    """Pages of 10 events walked through one gateway process, then through a new one after
    it stopped: same bytes and ETags, final pages immutable, the last one not; together
    they are every stored event once, in order."""
    exec_id = unique("pages")
    await publish(nats_url, exec_id, 25)
    params = {"workflow_exec_id": exec_id, "limit": "10"}
    walks = []
    for _ in range(2):
        with gateway_process(nats_url) as gateway:
            walks.append(await walk(gateway.url + PAGES, params))
    first, second = walks
    assert [p.body for p in first] == [p.body for p in second]
    assert [p.headers["etag"] for p in first] == [p.headers["etag"] for p in second]
    assert [len(p.json["events"]) for p in first] == [10, 10, 5]
    for page in first[:2]:
        assert page.json["complete"] is True
        assert page.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert first[2].json["complete"] is False
    assert first[2].headers["cache-control"] == "no-cache"
    stored = [e.broker_sequence for e in await collect(nats_url, workflow_exec_id=exec_id)]
    assert sequences_of(first) == stored
    assert first[2].json["next_cursor"] == str(stored[-1] + 1)


async def test_if_none_match_gets_304(gateway, nats_url):
    """A client that has a page sends its ETag and gets 304 without a body; another ETag,
    or none, gets the page (negative control)."""
    exec_id = unique("pages-etag")
    await publish(nats_url, exec_id, 3)
    url, params = gateway.url + PAGES, {"workflow_exec_id": exec_id, "limit": "2"}
    page = await get_page(url, params)
    etag = page.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    for header in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        again = await get_page(url, params, {"If-None-Match": header})
        assert (again.status, again.body) == (304, b""), header
        assert again.headers["etag"] == etag
        assert again.headers["cache-control"] == page.headers["cache-control"]
    for headers in ({"If-None-Match": '"other"'}, None):
        again = await get_page(url, params, headers)
        assert (again.status, again.body) == (200, page.body)


async def test_a_growing_page_is_never_final(gateway, nats_url):
    """The last page is `no-cache` and `complete: false` while it has room; once its events
    are all there it is final, starts with the same events, and an ETag of the growing
    page no longer matches it."""
    exec_id = unique("pages-grow")
    await publish(nats_url, exec_id, 4)
    url, params = gateway.url + PAGES, {"workflow_exec_id": exec_id, "limit": "8"}
    growing = await get_page(url, params)
    assert growing.json["complete"] is False
    assert growing.headers["cache-control"] == "no-cache"
    assert len(growing.json["events"]) == 4
    await publish(nats_url, exec_id, 6)
    final = growing
    while not final.json["complete"]:  # The gateway keeps a growing page for a moment.
        await asyncio.sleep(0.2)
        final = await get_page(url, params, {"If-None-Match": growing.headers["etag"]})
        assert final.status == 200 or final.headers["etag"] == growing.headers["etag"]
        if final.status == 304:
            final = growing
    assert final.headers["cache-control"].endswith("immutable")
    assert final.json["events"][:4] == growing.json["events"]
    assert len(final.json["events"]) == 8
    assert final.headers["etag"] != growing.headers["etag"]
    rest = await get_page(url, {**params, "cursor": final.json["next_cursor"]})
    assert len(rest.json["events"]) == 2 and rest.json["complete"] is False


async def test_bad_page_parameters_are_named(gateway):
    """A bad cursor or limit, or a start given the stream routes' way, is a 422 naming it."""
    url = gateway.url + PAGES
    for params, name in (
        ({"cursor": "abc"}, "cursor"),
        ({"cursor": "0"}, "cursor"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"start_seq": "5"}, "start_seq"),
        ({"late_join": "true"}, "late_join"),
    ):
        page = await get_page(url, {"workflow_exec_id": "x", **params})
        assert page.status == 422, params
        assert page.json["reason"].startswith(name), page.json
    missing = await get_page(url, {})
    assert missing.status == 422 and "workflow_exec_id" in missing.json["reason"]


async def test_catch_up_example_then_stream_from_its_cursor(gateway, nats_url):
    """examples/gateway_catchup.py walks the pages to every stored event; streaming from its
    cursor gives what is published after, with nothing repeated."""
    exec_id = unique("pages-example")
    await publish(nats_url, exec_id, 130)
    events, start = await asyncio.to_thread(gateway_catchup.catch_up, gateway.url, exec_id)
    stored = [e.broker_sequence for e in await collect(nats_url, workflow_exec_id=exec_id)]
    assert [e["broker_sequence"] for e in events] == stored
    later = await publish(nats_url, exec_id, 3)
    blocks = await raw_sse(
        gateway.url + "/v1/workflows/events/stream",
        {"workflow_exec_id": exec_id, "start_seq": start},
    )
    assert ids_of(blocks) == later
