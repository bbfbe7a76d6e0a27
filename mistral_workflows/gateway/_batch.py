"""Events framed once for many clients: the SSE messages of consecutive events joined in one
bytes object, written as is to every viewer at that position."""

from __future__ import annotations

from bisect import bisect_left

__all__ = ["Batch"]


class Batch:
    """SSE messages of events, oldest first, as one write.

    `data` is the messages joined; `seqs` their broker sequences and `stamps` their
    producers' timestamps (Unix nanoseconds, for the delivery lag), one per event;
    `frames` the messages one by one, for a viewer that already has the first ones.
    """

    __slots__ = ("data", "frames", "seqs", "stamps")

    def __init__(
        self,
        data: bytes,
        seqs: tuple[int, ...],
        stamps: tuple[int, ...],
        frames: tuple[bytes, ...],
    ) -> None:
        self.data = data
        self.seqs = seqs
        self.stamps = stamps
        self.frames = frames

    @classmethod
    def one(cls, frame: bytes, seq: int, stamp: int) -> Batch:
        """The batch of one event."""
        return cls(frame, (seq,), (stamp,), (frame,))

    @classmethod
    def of(cls, frames: list[bytes], seqs: list[int], stamps: list[int]) -> Batch:
        """The batch of these events (at least one)."""
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        return cls(data, tuple(seqs), tuple(stamps), tuple(frames))

    @property
    def last(self) -> int:
        """The broker sequence of the newest event."""
        return self.seqs[-1]

    def since(self, seq: int) -> Batch | None:
        """The events from broker sequence `seq` on (None: none)."""
        if seq <= self.seqs[0]:
            return self
        at = bisect_left(self.seqs, seq)
        if at == len(self.seqs):
            return None
        frames = self.frames[at:]
        return Batch(b"".join(frames), self.seqs[at:], self.stamps[at:], frames)

    def prefixed(self, head: bytes) -> Batch:
        """The same events with `head` written before them (counted as part of the first
        event's message)."""
        frames = (head + self.frames[0], *self.frames[1:])
        return Batch(head + self.data, self.seqs, self.stamps, frames)
