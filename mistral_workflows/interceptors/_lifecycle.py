"""Lifecycle events (WORKFLOW_EXECUTION_*, ACTIVITY_TASK_*): their bodies and their rules."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import temporalio.converter
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from mistral_workflows.core.context import ActivityRef, EventSink, ExecutionContext
from mistral_workflows.core.envelope import envelope, failure_message, source
from mistral_workflows.core.events import EventType
from mistral_workflows.core.subjects import LIFECYCLE_STREAM

__all__ = [
    "activity_failure_event",
    "json_payload",
    "lifecycle_message",
    "publish_lifecycle",
]

# Inputs and results are shown to consumers when they are JSON and small; beyond this they
# are left out rather than pushing lifecycle events towards the size limit.
_MAX_SHOWN_BYTES = 16 * 1024


def json_payload(
    converter: temporalio.converter.PayloadConverter, values: Sequence[Any]
) -> dict[str, Any]:
    """`{"type": "json", "value": ...}` for activity/workflow inputs or a result.

    One value is shown as itself, several as a list; values that Temporal does not encode
    as JSON, or that are large, are shown as None.
    """
    try:
        payloads = converter.to_payloads(values)
    except Exception:  # An unconvertible value must not fail the user's activity.
        return {"type": "json", "value": None}
    if any(p.metadata.get("encoding") != b"json/plain" for p in payloads):
        return {"type": "json", "value": None}
    if sum(len(p.data) for p in payloads) > _MAX_SHOWN_BYTES:
        return {"type": "json", "value": None}
    shown = [orjson.loads(p.data) for p in payloads]
    return {"type": "json", "value": shown[0] if len(shown) == 1 else shown}


def activity_failure_event(
    info: activity.Info, error: BaseException, timed_out: str | None = None
) -> tuple[EventType, str]:
    """ACTIVITY_TASK_RETRYING or _FAILED for an attempt that raised `error`, and a message."""
    if timed_out is not None:
        message = f"activity {timed_out} timeout"
        if timed_out == "SCHEDULE_TO_CLOSE":
            return EventType.ACTIVITY_TASK_FAILED, message
    elif isinstance(error, asyncio.CancelledError) or (
        isinstance(error, CancelledError) and activity.is_cancelled()
    ):
        details = activity.cancellation_details()
        if details is not None and details.worker_shutdown:
            return EventType.ACTIVITY_TASK_RETRYING, "the worker shut down during the attempt"
        if details is None or not details.timed_out:
            return EventType.ACTIVITY_TASK_FAILED, "activity cancelled"
        message = "activity timed out"
    else:
        message = failure_message(error)
    final = not _will_retry(info, error)
    return (EventType.ACTIVITY_TASK_FAILED if final else EventType.ACTIVITY_TASK_RETRYING), message


def _will_retry(info: activity.Info, error: BaseException) -> bool:
    """Whether Temporal schedules another attempt, following the retry policy."""
    if isinstance(error, ApplicationError) and error.non_retryable:
        return False
    policy = info.retry_policy
    if policy is not None:
        kind = error.type if isinstance(error, ApplicationError) and error.type else None
        kind = kind or type(error).__name__
        if kind in (policy.non_retryable_error_types or ()):
            return False
        # maximum_attempts == 0 means no limit.
        if policy.maximum_attempts and info.attempt >= policy.maximum_attempts:
            return False
    deadline = info.schedule_to_close_timeout
    if deadline:
        return datetime.now(UTC) < info.scheduled_time + deadline
    return True


def lifecycle_message(
    sink: EventSink,
    context: ExecutionContext,
    activity_ref: ActivityRef | None,
    event_type: EventType,
    event_id: str,
    attributes: dict[str, Any],
) -> tuple[str, bytes, dict[str, str]]:
    """One lifecycle event for the reserved stream: its subject, payload and headers."""
    channel = sink.channel(LIFECYCLE_STREAM)
    body = envelope(
        stream=LIFECYCLE_STREAM,
        event_type=event_type,
        event_id=event_id,
        attributes=attributes,
        now_ns=channel.clock(),
        **source(context, activity_ref),
    )
    payload, headers = sink.encode(body, event_id, event_type)
    return channel.subject, payload, headers


async def publish_lifecycle(
    sink: EventSink,
    context: ExecutionContext,
    activity_ref: ActivityRef | None,
    event_type: EventType,
    event_id: str,
    attributes: dict[str, Any],
) -> None:
    """Publish one lifecycle event on the reserved stream."""
    message = lifecycle_message(sink, context, activity_ref, event_type, event_id, attributes)
    await sink.send(*message)
