"""Continue a worker's trace from the events a consumer reads (needs the `otel` extra).

A worker with tracing on (the default) sends the W3C trace context of the activity's
current OpenTelemetry span with each event, in the message headers; `subscribe()` gives it
back as `StreamEvent.trace_context`. These helpers turn it into what OpenTelemetry's API
takes, so that a consumer's span links to (or continues) the span that produced the event:

    from opentelemetry import trace
    from mistral_workflows.tracing import span_links

    tracer = trace.get_tracer("my-consumer")
    async for event in subscribe(nats_url, workflow_exec_id=run_id):
        with tracer.start_as_current_span("show event", links=span_links(event)):
            ...

This module imports `opentelemetry` (the `opentelemetry-api` package); `import
mistral_workflows` does not.
"""

from __future__ import annotations

from mistral_workflows.core.events import StreamEvent

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as e:  # pragma: no cover - the extra is installed in the tests
    raise ImportError(
        "mistral_workflows.tracing needs OpenTelemetry's API: pip install 'mistral-workflows[otel]'"
    ) from e

__all__ = ["parent_context", "span_context", "span_links"]

_W3C = TraceContextTextMapPropagator()


def span_context(event: StreamEvent) -> trace.SpanContext | None:
    """The context of the span that produced `event` (remote), or None when the event
    carries no valid trace context (tracing off, no span in the activity)."""
    carrier = event.trace_context
    if not carrier:
        return None
    found = trace.get_current_span(_W3C.extract(carrier)).get_span_context()
    return found if found.is_valid else None


def span_links(event: StreamEvent) -> list[trace.Link]:
    """A link to the span that produced `event`, for `links=` when starting a span: one
    link, or none when the event carries no trace context."""
    found = span_context(event)
    return [] if found is None else [trace.Link(found)]


def parent_context(event: StreamEvent) -> otel_context.Context | None:
    """A context whose current span is the one that produced `event`, for `context=`
    when starting a span that continues the producer's trace as its child; None when
    the event carries no trace context (a span started with `context=None` is a root or
    a child of the consumer's current span)."""
    found = span_context(event)
    return None if found is None else trace.set_span_in_context(trace.NonRecordingSpan(found))
