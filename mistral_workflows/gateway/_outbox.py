"""Messages read ahead of slow clients, bounded in bytes per client and over all clients."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

__all__ = ["Outbox", "ReadAhead"]

T = TypeVar("T")


class ReadAhead:
    """The byte bounds on what a gateway reads ahead of its clients.

    Args:
        client_bytes: The most bytes of messages waiting for one client.
        total_bytes: The most bytes of messages waiting for all clients together.
    """

    def __init__(self, client_bytes: int, total_bytes: int) -> None:
        self.client_bytes = client_bytes
        self.total_bytes = total_bytes
        self.used = 0
        self._freed = asyncio.Event()
        self._waiting = 0

    def fits(self, size: int) -> bool:
        """Whether `size` more bytes stay within the total."""
        return self.used + size <= self.total_bytes

    def take(self, size: int) -> None:
        """Count `size` bytes as waiting."""
        self.used += size

    def give(self, size: int) -> None:
        """`size` bytes are no longer waiting: wake whoever waits for room."""
        self.used -= size
        if self._waiting:  # A new event only when someone waits: this runs per write.
            freed, self._freed = self._freed, asyncio.Event()
            freed.set()

    async def freed(self) -> None:
        """Return once some client's messages were sent or dropped."""
        self._waiting += 1
        try:
            await self._freed.wait()
        finally:
            self._waiting -= 1


class Outbox(Generic[T]):
    """The messages waiting for one client, oldest first.

    `put` waits while the client's bytes or the total would go over their bound, unless
    nothing waits for this client: one message, however large, always fits, so that every
    client moves on even when others fill the total.
    """

    def __init__(self, bounds: ReadAhead) -> None:
        self._bounds = bounds
        self._items: deque[tuple[T, int]] = deque()
        self._size = 0
        self._arrived = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: T, size: int) -> None:
        """Add `item`, counted as `size` bytes, once there is room for it."""
        while self._items and not self._has_room(size):
            await self._bounds.freed()
        self.push(item, size)

    def push(self, item: T, size: int, wake: bool = True) -> None:
        """Add `item` now (small notices that must not wait); without `wake`, whoever
        waits for it is woken by a later `wake()`."""
        self._items.append((item, size))
        self._size += size
        self._bounds.take(size)
        if wake:
            self._arrived.set()

    def wake(self) -> None:
        """Wake whoever waits for items (`push(..., wake=False)`)."""
        self._arrived.set()

    async def get(self) -> T:
        """The oldest item, once there is one."""
        while not self._items:
            self._arrived.clear()
            await self._arrived.wait()
        item, size = self._items.popleft()
        self._release(size)
        return item

    def room(self, size: int, alone: bool = True) -> bool:
        """Whether `size` more bytes stay within this client's bound (with `alone`, one
        item always fits when nothing waits)."""
        return (alone and not self._items) or self._size + size <= self._bounds.client_bytes

    async def drain(self) -> list[T]:
        """Everything waiting, oldest first, once there is something."""
        while not self._items:
            self._arrived.clear()
            await self._arrived.wait()
        items = [item for item, _ in self._items]
        self._items.clear()
        self._release(self._size)
        return items

    def clear(self) -> None:
        """Drop what waits (the client is gone), giving its bytes back to the total."""
        size = self._size
        self._items.clear()
        self._release(size)

    def _has_room(self, size: int) -> bool:
        return self._size + size <= self._bounds.client_bytes and self._bounds.fits(size)

    def _release(self, size: int) -> None:
        self._size -= size
        self._bounds.give(size)
