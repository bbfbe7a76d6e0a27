"""`Gap`: the notice that a reader could not start, or go on, where it was asked to."""

from __future__ import annotations

import logging
from dataclasses import dataclass

__all__ = ["Gap", "log_gap"]

log = logging.getLogger("mistral_workflows")


@dataclass(frozen=True, slots=True)
class Gap:
    """Events from `requested` on were asked for, but reading goes on at `first_available`.

    Either the oldest events expired or were deleted (`first_available` is then higher than
    `requested`), or, with `recreated`, the stream is not the one the position came from:
    it was deleted and created again, or its server restarted on an empty store, and its
    sequences started again at 1. The position means nothing in the new stream, so reading
    starts over at its first event; what the old stream held after `requested` is gone.
    """

    requested: int
    first_available: int
    recreated: bool = False

    def __str__(self) -> str:
        if self.recreated:
            return (
                f"the stream was recreated and its sequences restarted: events from "
                f"{self.requested} on belong to the old stream and are gone; reading the "
                f"new stream from {self.first_available}"
            )
        return (
            f"events {self.requested}..{self.first_available - 1} are no longer in the stream "
            f"(expired or deleted); reading from {self.first_available}"
        )


def log_gap(gap: Gap) -> None:
    """Log a gap as a warning: what `subscribe` does unless told otherwise."""
    log.warning("mistral_workflows: %s", gap)
