"""Pages follow the tokens' rules, and the page cache never hands one grant's page to
another; complete pages are served again without reading JetStream."""

from __future__ import annotations

from typing import Any

from mistral_workflows.gateway import mint_token
from tests.gateway.gateway_support import SECRET
from tests.gateway.page_support import PAGES, get_page, jetstream_requests, publish
from tests.support import unique

KEY = SECRET.encode()
EXECUTION_PAGES = "/v1/workflows/executions/{}/pages"


def strangers(events: list[dict[str, Any]], root: str | None, namespace: str) -> list[Any]:
    """The events of `events` outside the tree of `root` (any tree if None) in `namespace`."""
    return [
        e
        for e in events
        if e["workflow_context"]["namespace"] != namespace
        or (root is not None and e["data"]["root_workflow_exec_id"] != root)
    ]


def bearer(namespace: str, root: str | None = None) -> dict[str, str]:
    token = mint_token(KEY, namespace, root_workflow_exec_id=root, ttl=600)
    return {"Authorization": f"Bearer {token}"}


async def test_the_same_url_gives_each_grant_its_own_page(secured_gateway, nats_url):
    """Id X runs in tree A and tree B of one namespace, and in another namespace. The same
    page URL read with each token, one after the other (the first read is kept in the
    cache), gives each token only its own events; a token naming another tree is refused.
    The check finds the other tree's events when given them (negative control)."""
    shared, tree_a, tree_b = unique("reused"), unique("tree-a"), unique("tree-b")
    await publish(nats_url, shared, 3, root=tree_a)
    await publish(nats_url, shared, 2, root=tree_b)
    await publish(nats_url, shared, 4, namespace="other")
    url = secured_gateway.url + EXECUTION_PAGES.format(shared)
    seen = {}
    for namespace, root, count in (
        ("default", tree_a, 3),
        ("default", tree_b, 2),
        ("other", None, 4),
        ("default", None, 5),
    ):
        page = await get_page(url, {"limit": "10"}, bearer(namespace, root))
        assert page.status == 200, page.body
        events = page.json["events"]
        assert len(events) == count, (namespace, root)
        assert strangers(events, root, namespace) == []
        seen[(namespace, root)] = events
    assert strangers(seen[("default", tree_b)], tree_a, "default") != []
    assert strangers(seen[("other", None)], None, "default") != []
    refused = await get_page(
        secured_gateway.url + PAGES,
        {"root_workflow_exec_id": tree_b},
        bearer("default", tree_a),
    )
    assert refused.status == 403
    assert (await get_page(url, {})).status == 401


async def test_page_caching_follows_where_the_token_is(secured_gateway, nats_url):
    """A final page read with a token in the Authorization header is for the browser's cache
    only and varies with that header; with the token in the URL (`access_token`) any cache
    may keep it; either way no longer than the token lives."""
    exec_id = unique("pages-cache")
    await publish(nats_url, exec_id, 2)
    url = secured_gateway.url + EXECUTION_PAGES.format(exec_id)
    token = mint_token(KEY, "default", ttl=600)
    in_header = await get_page(url, {"limit": "1"}, {"Authorization": f"Bearer {token}"})
    in_url = await get_page(url, {"limit": "1", "access_token": token})
    assert in_header.body == in_url.body
    for page, scope in ((in_header, "private"), (in_url, "public")):
        control = page.headers["cache-control"]
        assert control.startswith(f"{scope}, max-age=") and control.endswith(", immutable")
        assert 0 < int(control.split("max-age=")[1].split(",")[0]) <= 600
        assert page.headers["vary"] == "Authorization"


async def test_complete_pages_are_served_again_without_jetstream(gateway, nats_url):
    """Twenty requests for a complete page read JetStream once; a page not read before
    makes requests to JetStream (negative control: the count sees reads)."""
    exec_id = unique("pages-reads")
    await publish(nats_url, exec_id, 6)
    url, params = gateway.url + PAGES, {"workflow_exec_id": exec_id, "limit": "3"}
    first = await get_page(url, params)
    before = await jetstream_requests(nats_url)
    for _ in range(20):
        assert (await get_page(url, params)).body == first.body
    assert await jetstream_requests(nats_url) - before == 1  # The count's own request.
    before = await jetstream_requests(nats_url)
    await get_page(url, {**params, "cursor": first.json["next_cursor"]})
    assert await jetstream_requests(nats_url) - before > 1
