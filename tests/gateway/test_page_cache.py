"""The page cache: one read for concurrent requests, byte bounds on what it keeps."""

from __future__ import annotations

import asyncio

from mistral_workflows.gateway._pagecache import Page, PageCache


def page(size: int, complete: bool = True) -> Page:
    return Page(b"x" * size, f'"{size}"', complete)


async def test_concurrent_requests_for_a_page_share_one_read():
    """Twenty requests for a page being read wait for that one read; a later request for a
    complete page reads nothing; a growing page is read again once its moment is over."""
    cache = PageCache(1000, tail_seconds=0.0)
    reads = {"done": 0, "growing": 0}
    release = asyncio.Event()

    async def read_done() -> Page:
        reads["done"] += 1
        await release.wait()
        return page(10)

    async def read_growing() -> Page:
        reads["growing"] += 1
        return page(10, complete=False)

    waiting = [asyncio.create_task(cache.get("done", read_done)) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    assert {p.etag for p in await asyncio.gather(*waiting)} == {'"10"'}
    await cache.get("done", read_done)
    for _ in range(3):
        await cache.get("growing", read_growing)
    assert reads == {"done": 1, "growing": 3}


async def test_kept_pages_stay_within_their_bytes():
    """Complete pages past the bound push out the least recently used; a page larger than
    the bound is served but not kept; growing pages keep to a quarter of the bound."""
    cache = PageCache(100, tail_seconds=60.0)
    reads: list[str] = []

    def reader(key: str, size: int, complete: bool = True):  # type: ignore[no-untyped-def]
        async def read() -> Page:
            reads.append(key)
            return page(size, complete)

        return read

    for key in ("a", "b", "c"):
        await cache.get(key, reader(key, 40))
    await cache.get("huge", reader("huge", 101))
    for key in ("c", "b", "a", "huge"):
        await cache.get(key, reader(key, 40))
    # Two fit: "a" was pushed out by "c"; "huge" was never kept.
    assert reads == ["a", "b", "c", "huge", "a", "huge"]
    reads.clear()
    for key in ("t1", "t2", "t1", "t2"):
        await cache.get(key, reader(key, 20, complete=False))
    assert reads == ["t1", "t2", "t2"]
