"""The current OpenTelemetry span, as the W3C trace headers a worker adds to each event.

The activity's span context travels in the message headers (`traceparent`, and
`tracestate` when the span has one), so the event's body stays as it is. OpenTelemetry is
optional: without the `opentelemetry-api` package (the `otel` extra), or outside any
recording span, nothing is added. It is imported only when a worker turns tracing on,
never by `import mistral_workflows`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mistral_workflows.core.encoding import TRACEPARENT, TRACESTATE

__all__ = ["TraceHeaders", "trace_headers"]

TraceHeaders = Callable[[], "dict[str, str] | None"]
"""Returns the trace headers of the current span, or None when there is none."""

# W3C asks vendors to pass on at least 512 characters of tracestate; a longer one is left
# out (the traceparent alone still links the event to its span).
_MAX_TRACESTATE = 512


def trace_headers() -> TraceHeaders | None:
    """A reader of the current span's trace headers; None without OpenTelemetry."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return _Reader(trace.get_current_span)


class _Reader:
    """Formats the current span's context once per span (one event after another of the
    same span costs a context lookup)."""

    __slots__ = ("_current_span", "_headers", "_last")

    def __init__(self, current_span: Callable[[], Any]) -> None:
        self._current_span = current_span
        self._last: object = None
        self._headers: dict[str, str] | None = None

    def __call__(self) -> dict[str, str] | None:
        context = self._current_span().get_span_context()
        if context is not self._last:
            self._last = context
            self._headers = _format(context) if context.is_valid else None
        return self._headers


def _format(context: Any) -> dict[str, str]:
    flags = int(context.trace_flags)
    headers = {TRACEPARENT: f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"}
    state = context.trace_state.to_header() if context.trace_state else ""
    if state and len(state) <= _MAX_TRACESTATE:
        headers[TRACESTATE] = state
    return headers
