"""The envelope of one event as producers build it: its id, its time, where it comes from.

Every event a producer sends (a task's, a lifecycle event) is built here, as a plain dict in
the shape that `events.StreamEvent` parses: no model per event on the hot path.
"""

from __future__ import annotations

import functools
import time
import uuid
from typing import Any

from mistral_workflows.core.context import ActivityRef, ExecutionContext
from mistral_workflows.core.redact import redact

__all__ = ["envelope", "failure_message", "iso_timestamp", "source", "stable_id"]

# Ids are derived from where an event comes from, so a re-sent or re-run event (a retried
# publish, a workflow task that runs again) has the same id and JetStream drops the copy.
_ID_NAMESPACE = uuid.UUID("5f0c6b1e-8d1a-4c59-9a57-6a1f1c3e2b7d")
_MAX_MESSAGE = 4000


def stable_id(*parts: str) -> str:
    """A deterministic UUID-shaped id for the given parts."""
    return str(uuid.uuid5(_ID_NAMESPACE, "\x00".join(parts)))


def iso_timestamp(ns: int) -> str:
    """Format Unix nanoseconds as an RFC 3339 UTC timestamp with microseconds and a `Z`."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return f"{_second(seconds)}.{rest // 1000:06d}Z"


@functools.lru_cache(maxsize=4)
def _second(seconds: int) -> str:
    # Events come many to a second: format the date and time once per second.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def source(context: ExecutionContext, activity: ActivityRef | None) -> dict[str, Any]:
    """The `envelope` arguments that say where events come from (the same for every event
    of a producer: build them once)."""
    return {
        "origin": {
            "workflow_name": context.workflow_name,
            "workflow_exec_id": context.workflow_exec_id,
            "root_workflow_exec_id": context.root_workflow_exec_id,
            "parent_workflow_exec_id": context.parent_workflow_exec_id,
            "workflow_run_id": context.workflow_run_id,
        },
        "workflow_context": {
            "namespace": context.namespace,
            "workflow_name": context.workflow_name,
            "workflow_exec_id": context.workflow_exec_id,
            "parent_workflow_exec_id": context.parent_workflow_exec_id,
            "root_workflow_exec_id": context.root_workflow_exec_id,
        },
        "activity_context": None
        if activity is None
        else {
            "activity_id": activity.activity_id,
            "activity_name": activity.activity_name,
            "attempt": activity.attempt,
        },
    }


def envelope(
    *,
    stream: str,
    event_type: str,
    event_id: str,
    attributes: dict[str, Any],
    origin: dict[str, Any],
    workflow_context: dict[str, Any],
    activity_context: dict[str, Any] | None,
    now_ns: int | None = None,
) -> dict[str, Any]:
    """Build one event's envelope as a plain dict, ready to serialise.

    Args:
        stream: The stream name (the task type, or the reserved lifecycle stream).
        event_type: One of `EventType`.
        event_id: The event's unique, deterministic id (also its JetStream message id).
        attributes: The type-specific attributes.
        origin: The event's workflow fields (`workflow_name`, `workflow_exec_id`,
            `root_workflow_exec_id`, `parent_workflow_exec_id`, `workflow_run_id`).
        workflow_context: The envelope's `workflow_context` object.
        activity_context: The producing activity attempt, or None for workflow code.
        now_ns: The event time in Unix nanoseconds (default: now).

    `source()` gives `origin`, `workflow_context` and `activity_context` of a producer.
    """
    ns = time.time_ns() if now_ns is None else now_ns
    return {
        "stream": stream,
        "timestamp": iso_timestamp(ns),
        "data": {
            "event_type": event_type,
            "event_id": event_id,
            "event_timestamp": ns,
            **origin,
            "attributes": attributes,
        },
        "workflow_context": workflow_context,
        "activity_context": activity_context,
        "metadata": {},
    }


def failure_message(error: BaseException) -> str:
    """An event's description of an exception: its type (an `ApplicationError`'s own type
    when it has one) and its message, redacted, long messages cut."""
    # Imported here: core modules load without Temporal, which consumers do not need.
    from temporalio.exceptions import ApplicationError

    kind, text = type(error).__name__, str(error)
    if isinstance(error, ApplicationError) and error.type:
        kind, text = error.type, error.message  # its str() starts with its type already
    text = redact(text)  # events are stored in clear text for the whole retention
    if len(text) > _MAX_MESSAGE:
        text = text[:_MAX_MESSAGE] + f"... ({len(text) - _MAX_MESSAGE} more characters)"
    message = f"{kind}: {text}" if text else kind
    if message.isascii():
        return message
    # A lone surrogate cannot be sent (UTF-8 cannot encode it): show it escaped, \ud800.
    return message.encode("utf-8", "backslashreplace").decode("utf-8")
