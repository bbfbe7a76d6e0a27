"""The pages a gateway has read: complete pages kept until their bytes are needed, pages
still growing for a moment, and one read for many clients asking the same page at once."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["Page", "PageCache"]


@dataclass(frozen=True, slots=True)
class Page:
    """One page's response body, its strong validator, and whether it is final."""

    body: bytes
    etag: str
    complete: bool
    """True: the page holds all it will ever hold (it never changes)."""


class PageCache:
    """Pages by key (what was asked, confined to the token's grant): complete pages in a
    least-recently-used store of at most `max_bytes`; a growing page for `tail_seconds`
    (growing pages together up to a quarter of `max_bytes`).

    Requests for a page being read wait for that read instead of starting their own.
    """

    def __init__(self, max_bytes: int, tail_seconds: float) -> None:
        self._max_bytes = max_bytes
        self._tail_seconds = tail_seconds
        self._complete: OrderedDict[str, Page] = OrderedDict()
        self._size = 0
        self._tails: dict[str, tuple[float, Page]] = {}
        self._tail_size = 0
        self._reading: dict[str, asyncio.Future[Page]] = {}

    async def get(self, key: str, read: Callable[[], Awaitable[Page]]) -> Page:
        """The page of `key`: kept, being read, or read now by `read`."""
        page = self._kept(key)
        if page is not None:
            return page
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self._read(key, read))
            # Retrieved here too, should every client waiting for it have left.
            reading.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._reading[key] = reading
        # Shielded: a client leaving does not cancel the read the others wait for.
        return await asyncio.shield(reading)

    def _kept(self, key: str) -> Page | None:
        page = self._complete.get(key)
        if page is not None:
            self._complete.move_to_end(key)
            return page
        tail = self._tails.get(key)
        if tail is not None and time.monotonic() < tail[0]:
            return tail[1]
        self._drop_tail(key)
        return None

    async def _read(self, key: str, read: Callable[[], Awaitable[Page]]) -> Page:
        try:
            page = await read()
        finally:
            del self._reading[key]
        self._drop_tail(key)
        if page.complete:
            self._keep(key, page)
        elif self._tail_seconds > 0:
            self._keep_tail(key, page)
        return page

    def _keep(self, key: str, page: Page) -> None:
        size = len(page.body)
        if size > self._max_bytes:
            return
        self._complete[key] = page
        self._size += size
        while self._size > self._max_bytes:
            _, oldest = self._complete.popitem(last=False)
            self._size -= len(oldest.body)

    def _keep_tail(self, key: str, page: Page) -> None:
        now = time.monotonic()
        for old in [k for k, (until, _) in self._tails.items() if until <= now]:
            self._drop_tail(old)
        if self._tail_size + len(page.body) <= self._max_bytes // 4:
            self._tails[key] = (now + self._tail_seconds, page)
            self._tail_size += len(page.body)

    def _drop_tail(self, key: str) -> None:
        tail = self._tails.pop(key, None)
        if tail is not None:
            self._tail_size -= len(tail[1].body)
