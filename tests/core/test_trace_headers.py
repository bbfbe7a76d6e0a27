"""Trace headers on an event: added when they fit, never a reason to refuse the event."""

from __future__ import annotations

from mistral_workflows.core.encoding import (
    EXPECTED_STREAM,
    MSG_ID,
    TRACEPARENT,
    TRACESTATE,
    encode_event,
    event_size,
)

BODY = {"stream": "s", "data": {"event_id": "k:1:0", "event_type": "CUSTOM_TASK_STARTED"}}
TRACE = {
    TRACEPARENT: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    TRACESTATE: "vendor=opaque",
}


def test_trace_headers_are_added_and_counted_in_the_size():
    """With room, both headers go with the event and its size counts them."""
    payload, headers = encode_event(BODY, "k:1:0", "S", 1 << 20, "e", None, TRACE)
    assert headers == {MSG_ID: "k:1:0", EXPECTED_STREAM: "S", **TRACE}
    plain, bare = encode_event(BODY, "k:1:0", "S", 1 << 20, "e")
    assert plain == payload and bare == {MSG_ID: "k:1:0", EXPECTED_STREAM: "S"}
    assert event_size(payload, headers) > event_size(plain, bare)


def test_an_event_that_fits_only_without_its_trace_context_is_sent_without_it():
    """At a limit the bare event meets exactly, the trace headers are left out rather than
    the event refused; at the size of the event with them, they go."""
    plain, bare = encode_event(BODY, "k:1:0", "S", 1 << 20, "e")
    exact = event_size(plain, bare)
    _, headers = encode_event(BODY, "k:1:0", "S", exact, "e", None, TRACE)
    assert headers == bare
    traced = event_size(plain, {**bare, **TRACE})
    _, headers = encode_event(BODY, "k:1:0", "S", traced, "e", None, TRACE)
    assert TRACEPARENT in headers
