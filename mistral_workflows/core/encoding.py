"""One event as it goes on the wire: its JSON bytes, its headers, and its size as the
server counts it."""

from __future__ import annotations

from typing import Any

import orjson

from mistral_workflows.core.encryption import Encryption
from mistral_workflows.core.errors import PayloadTooLargeError

__all__ = [
    "EXPECTED_STREAM",
    "MSG_ID",
    "PENDING_MESSAGES",
    "STATUS",
    "TRACEPARENT",
    "TRACESTATE",
    "encode_event",
    "event_size",
    "trace_context",
]

MSG_ID = "Nats-Msg-Id"
"""JetStream's deduplication key: the event id, so a re-sent event is stored once."""
EXPECTED_STREAM = "Nats-Expected-Stream"
"""The stream an event must land in; JetStream refuses it anywhere else."""
STATUS = "Status"
"""The status code of a NATS control message (503: no responders; 100: heartbeat...)."""
PENDING_MESSAGES = "Nats-Pending-Messages"
"""In a pull request's status message: how many of the requested messages did not come."""
TRACEPARENT = "traceparent"
"""The W3C trace context of the span that produced an event (with tracing on)."""
TRACESTATE = "tracestate"
"""The W3C vendor trace state that goes with `TRACEPARENT`, when the span has one."""

# nats-py frames headers as "NATS/1.0\r\n" + "Key: value\r\n"... + "\r\n"; the server
# counts them against max_payload, nats-py does not (an oversized message then makes the
# server close the connection for good), so we count them ourselves.
_HEADER_OVERHEAD = len("NATS/1.0\r\n") + len("\r\n")


def _header_bytes(headers: dict[str, str]) -> int:
    size = _HEADER_OVERHEAD
    for key, value in headers.items():
        size += len(key) + (len(value) if value.isascii() else len(value.encode())) + 4
    return size


def trace_context(headers: dict[str, str] | None) -> dict[str, str] | None:
    """The W3C trace headers a stored event carries (see `TRACEPARENT`), or None."""
    if not headers or TRACEPARENT not in headers:
        return None
    return {k: headers[k] for k in (TRACEPARENT, TRACESTATE) if k in headers}


def event_size(payload: bytes, headers: dict[str, str]) -> int:
    """The size the server counts against max_payload: the payload and its headers."""
    return len(payload) + _header_bytes(headers)


def encode_event(
    body: dict[str, Any],
    msg_id: str,
    stream_name: str,
    limit: int,
    what: str,
    encryption: Encryption | None = None,
    trace: dict[str, str] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Serialise an event with its headers and check its size, headers included.

    With `encryption`, the task state is encrypted first (the size counts the ciphertext).
    The `trace` headers (W3C trace context) are added when they fit within `limit`: an
    event is never refused for its trace context, which is left out instead.

    Raises:
        PayloadTooLargeError: the event is over `limit`; nothing was sent.
    """
    if encryption is not None:
        body = encryption.encrypt_body(body)
    # orjson's bytes keep the capacity of its write buffer (about 8x the JSON); events wait
    # in memory until acknowledged, so keep an exact-size copy.
    payload = memoryview(orjson.dumps(body)).tobytes()
    headers = {MSG_ID: msg_id, EXPECTED_STREAM: stream_name}
    size = len(payload) + _header_bytes(headers)
    if size > limit:
        raise PayloadTooLargeError(
            f"{what} is {size} bytes, over the {limit}-byte event limit; nothing was "
            "sent. Store large data elsewhere (object storage, a database) and stream "
            "a reference to it, e.g. {'url': ..., 'size': ...}."
        )
    if trace and size + _header_bytes(trace) - _HEADER_OVERHEAD <= limit:
        headers.update(trace)
    return payload, headers
