"""Why one activity attempt can store no more events: JetStream refused one for good (a
full stream), or the stream is gone, or was replaced after some of the attempt's events
were stored in the old one. Snapshots never count: they are best effort."""

from __future__ import annotations

import logging
from typing import Literal, TypeGuard

import nats.js.errors

from mistral_workflows.core.errors import PublishError

__all__ = ["NATS_CLI", "Refusal", "StreamState", "refused"]

log = logging.getLogger("mistral_workflows")

NATS_CLI = "the nats CLI (https://github.com/nats-io/natscli/releases, or `nats` in Homebrew)"
"""Where to get the tool that messages about stream settings send users to."""

# JetStream answers 503 while it has no leader (start-up, failover): worth retrying. It
# also answers 503 when the stream is full (10077: maximum bytes, messages or messages per
# subject, with discard=new) or the account is (10023): refusals that re-sending won't cure.
_RETRYABLE_API_CODES = frozenset({503})
_STORAGE_REFUSALS = frozenset({10023, 10077})

StreamState = Literal["exists", "created", "missing"]
"""What a publish that found no stream led to: the stream exists (the publish came at a bad
moment), was created again, or does not exist and may not be created."""


def refused(error: object) -> TypeGuard[nats.js.errors.APIError]:
    """Whether JetStream refused for good: re-sending the event would not store it."""
    if not isinstance(error, nats.js.errors.APIError):
        return False
    return error.code not in _RETRYABLE_API_CODES or error.err_code in _STORAGE_REFUSALS


class Refusal:
    """The first reason an attempt's events cannot be stored, once there is one.

    Args:
        where: The stream and server, as errors name them.
        generation: How often the worker had created the stream again when the attempt
            began (see `Publisher.generation`).
        strict: Raise `PublishError` (else log the reason once).
    """

    def __init__(self, where: str, generation: int, *, strict: bool) -> None:
        self.reason: tuple[str, BaseException | None] | None = None
        self.stored_any = False  # an event (not a snapshot) of the attempt was stored
        self._where = where
        self._generation = generation
        self._strict = strict

    def raise_if_any(self, generation: int) -> None:
        """Raise the reason, if any (when strict). `generation` is the stream's now: if it
        was created again after some of our events were stored, they went with the old."""
        if generation != self._generation and self.stored_any:
            self._replaced()
        if self.reason is not None and self._strict:
            message, cause = self.reason
            raise PublishError(message) from cause

    def event_refused(self, error: nats.js.errors.APIError) -> None:
        """JetStream refused to store an event for good."""
        if error.err_code in _STORAGE_REFUSALS:
            advice = "the stream is full: remove its limits or make room"
        else:
            advice = "check the stream's settings"
        self._set(
            f"JetStream refused to store an event in {self._where}: {error.description} "
            f"(error {error.err_code}); {advice} (`nats stream info` with {NATS_CLI}). "
            "No later event of "
            "this attempt can be stored either, so the attempt fails; Temporal's retry can "
            "stream once this is fixed.",
            error,
        )

    def stream_checked(self, stream: str, state: StreamState, generation: int) -> None:
        """A publish found no stream `stream`, which was then checked: `state`."""
        if state == "missing":
            self._set(
                f"JetStream stream {stream!r} does not exist ({self._where}; deleted?) and "
                "the plugin was told not to create it (provision_stream=False): no event of "
                "this attempt can be stored. Ask the administrator to create it again (see "
                "docs/security.md); Temporal's retry of the activity can then stream.",
                None,
            )
            return
        if generation != self._generation and self.stored_any:
            self._replaced()
        self._generation = generation

    def _replaced(self) -> None:
        self._set(
            f"the JetStream stream ({self._where}) was deleted while this attempt ran, and "
            "this attempt's earlier events with it; the plugin created the stream again: "
            "the attempt fails so that Temporal's retry streams every event of the activity "
            "into the new stream.",
            None,
        )

    def _set(self, message: str, cause: BaseException | None) -> None:
        if self.reason is None:
            self.reason = (message, cause)
            if not self._strict:
                log.error("mistral_workflows: %s", message)
