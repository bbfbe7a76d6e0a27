"""Catch-up in pages: the stored events of an execution or a tree, a page at a time, as
responses that browsers and CDNs may cache.

A page is the first `limit` events (or fewer, up to `PAGE_BYTES`) at or after its cursor, a
broker sequence. Sequences only grow, so once a page is full its events are fixed: it is
served as final (`immutable`, with a strong `ETag` of its bytes), and its body is the same
on every request and from every gateway process. The last page, still growing, is never
final: `no-cache`, so that clients revalidate it (`If-None-Match`, answered 304 while
nothing changed).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request
from starlette.responses import Response

from mistral_workflows.consumer import Gap
from mistral_workflows.core.filter import EventFilter
from mistral_workflows.gateway._pagecache import Page, PageCache
from mistral_workflows.gateway._problems import Problem, invalid
from mistral_workflows.gateway._query import MAX_SEQUENCE, StreamQuery, _one, stream_query
from mistral_workflows.gateway._tokens import Grant

if TYPE_CHECKING:
    from mistral_workflows.gateway._app import _Gateway

__all__ = ["PAGE_BYTES", "PAGE_EVENTS", "event_pages", "execution_pages"]

PAGE_EVENTS = 100
"""Events in a page unless `limit` says otherwise."""
_MAX_EVENTS = 1000
PAGE_BYTES = 1024 * 1024
"""The most bytes of events in a page (a larger event comes alone)."""
CACHE_BYTES = 64 * 1024 * 1024
"""The most bytes of complete pages one gateway process keeps."""
TAIL_SECONDS = 1.0
"""How long a growing page is served from memory before it is read again."""
_STORED_IDLE = 0.3
_YEAR = 365 * 24 * 3600
_TREES = 10_000
# The parameters that would start reading elsewhere than at the cursor.
_NOT_HERE = ("start_seq", "last-event-id", "last_event_id", "late_join")


class _Pages:
    def __init__(self) -> None:
        self.cache = PageCache(CACHE_BYTES, TAIL_SECONDS)
        self.in_tree: set[tuple[str, str, str | None]] = set()


async def event_pages(request: Request) -> Response:
    """`GET /v1/workflows/events/pages`: the matching stored events, a page at a time."""
    return await _page(request, None)


async def execution_pages(request: Request) -> Response:
    """`GET /v1/workflows/executions/{execution_id}/pages`: one execution's events."""
    return await _page(request, request.path_params["execution_id"])


async def _page(request: Request, execution_id: str | None) -> Response:
    gateway: _Gateway = request.app.state.gateway
    pages = _pages(request)
    params = request.query_params
    cursor, limit = _cursor(params), _limit(params)
    for name in _NOT_HERE:
        if name in params:
            raise invalid(name, "pages start at their cursor; give cursor=<next_cursor>")
    rest = QueryParams([(k, v) for k, v in params.multi_items() if k not in ("cursor", "limit")])
    query = stream_query(rest, Headers(), execution_id)
    grant = gateway.access.grant(request)

    async def in_tree(exec_id: str, root: str, namespace: str | None) -> bool | None:
        # A run found in a tree stays there: asked once per process, not once per page.
        if (exec_id, root, namespace) in pages.in_tree:
            return True
        found = await gateway.in_tree(exec_id, root, namespace)
        if found and len(pages.in_tree) < _TREES:
            pages.in_tree.add((exec_id, root, namespace))
        return found

    wanted = await gateway.access.confine(query.filter, grant, in_tree)
    key = _key(wanted, query, cursor, limit)
    page = await pages.cache.get(key, lambda: _read(gateway, wanted, query, cursor, limit))
    return _response(request, page, grant, gateway.access.development)


def _pages(request: Request) -> _Pages:
    pages: _Pages | None = getattr(request.app.state, "pages", None)
    if pages is None:
        pages = request.app.state.pages = _Pages()
    return pages


def _cursor(params: QueryParams) -> int | None:
    value = _one(params, "cursor")
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 20):
        raise invalid("cursor", f"not a cursor of this route (next_cursor): {value[:40]!r}")
    number = int(value)
    if not 1 <= number <= MAX_SEQUENCE:
        raise invalid("cursor", f"must be 1 to {MAX_SEQUENCE}, not {value[:40]!r}")
    return number


def _limit(params: QueryParams) -> int:
    value = _one(params, "limit")
    if value is None:
        return PAGE_EVENTS
    if not (value.isascii() and value.isdigit() and len(value) <= 4) or not (
        1 <= int(value) <= _MAX_EVENTS
    ):
        raise invalid("limit", f"must be 1 to {_MAX_EVENTS}, not {value[:40]!r}")
    return int(value)


def _key(wanted: EventFilter, query: StreamQuery, cursor: int | None, limit: int) -> str:
    """What the page's bytes depend on: the filter confined to the grant, the metadata
    asked for, the cursor and the limit (never the token itself)."""
    fields = asdict(wanted)
    fields["event_types"] = sorted(wanted.event_types or ())
    asked = [fields, query.metadata, cursor, limit]
    text = json.dumps(asked, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


async def _read(
    gateway: _Gateway, wanted: EventFilter, query: StreamQuery, cursor: int | None, limit: int
) -> Page:
    gaps: list[Gap] = []
    events = gateway.read(
        wanted,
        start_seq=cursor,
        until_caught_up=True,
        idle_timeout=_STORED_IDLE,
        on_gap=gaps.append,
        read_ahead_bytes=PAGE_BYTES,
    )
    parts: list[bytes] = []
    size, last, complete = 0, None, False
    async with contextlib.aclosing(events):
        async for event in events:
            _check(gaps)
            if not query.keeps(event):
                continue
            part = event.model_dump_json().encode()
            if parts and size + len(part) > PAGE_BYTES:
                complete = True  # A next event exists: this page is fixed.
                break
            parts.append(part)
            size, last = size + len(part), event.broker_sequence
            if len(parts) == limit:
                complete = True
                break
    _check(gaps)
    next_cursor = cursor if last is None else last + 1
    return _page_of(parts, next_cursor, complete)


def _check(gaps: list[Gap]) -> None:
    if any(gap.recreated for gap in gaps):
        raise Problem(
            409,
            "stream_recreated",
            f"{gaps[-1]}: the cursor belongs to the stream before it was recreated; start "
            "again without a cursor",
        )


def _page_of(parts: list[bytes], next_cursor: int | None, complete: bool) -> Page:
    cursor = b"null" if next_cursor is None else b'"%d"' % next_cursor
    body = b'{"events":[%s],"next_cursor":%s,"complete":%s}' % (
        b",".join(parts),
        cursor,
        b"true" if complete else b"false",
    )
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Page(body, etag, complete)


def _response(request: Request, page: Page, grant: Grant, development: bool) -> Response:
    headers = {"ETag": page.etag, **_caching(request, page, grant, development)}
    if _matches(request.headers.get("if-none-match"), page.etag):
        return Response(status_code=304, headers=headers)
    return Response(page.body, media_type="application/json", headers=headers)


def _caching(request: Request, page: Page, grant: Grant, development: bool) -> dict[str, Any]:
    """Cache-Control (and Vary) for the page: final pages for as long as the token lasts.

    A page read with a token in the `Authorization` header is for the browser's cache only
    (a shared cache keyed by URL would hand it to other tokens); one read with the token in
    its URL may be kept by any cache, which only gives it back for that same URL.
    """
    vary = {"Vary": "Authorization"} if not development else {}
    if not page.complete:
        return {"Cache-Control": "no-cache", **vary}
    ttl = _YEAR
    if grant.expires_at is not None:
        ttl = max(0, min(ttl, grant.expires_at - int(time.time())))
    shared = development or "authorization" not in request.headers
    scope = "public" if shared else "private"
    return {"Cache-Control": f"{scope}, max-age={ttl}, immutable", **vary}


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Whether the client's `If-None-Match` names this page (weak comparison, RFC 9110)."""
    if if_none_match is None:
        return False
    tags = (tag.strip() for tag in if_none_match.split(","))
    return any(tag == "*" or tag.removeprefix("W/") == etag for tag in tags)
