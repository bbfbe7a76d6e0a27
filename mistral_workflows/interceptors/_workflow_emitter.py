"""Events of workflow code: sent by the library's local activity, not by the workflow.

Workflow code must stay deterministic and do no I/O, so its events are published by a
local activity of the library (`PUBLISH_ACTIVITY`): its result is recorded in history,
so a replay does not publish again, and a workflow task that fails and runs again
publishes events with the same ids, which JetStream drops as duplicates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import temporalio.exceptions
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from mistral_workflows.core import subjects
from mistral_workflows.core.context import Channel, ExecutionContext, FollowUp, scope_subject
from mistral_workflows.core.encoding import encode_event
from mistral_workflows.core.errors import PublishError
from mistral_workflows.core.publisher import Publisher

__all__ = ["PUBLISH_ACTIVITY", "WorkflowEmitter", "WorkflowSettings", "publish_activity"]

PUBLISH_ACTIVITY = "mistral_workflows.publish"
"""The library's local activity that publishes events for workflow code."""


@dataclass(frozen=True, slots=True)
class WorkflowSettings:
    """What workflow code needs to know of the plugin's settings."""

    prefix: str
    stream_name: str
    limit: int
    timeout: timedelta


def publish_activity(publisher: Callable[[], Publisher | None]) -> Callable[..., Any]:
    """The local activity that publishes one encoded event and waits until it is stored."""

    @activity.defn(name=PUBLISH_ACTIVITY)
    async def publish(subject: str, payload: str, headers: dict[str, str]) -> None:
        current = publisher()
        if current is None:
            raise ApplicationError("the worker is not connected to NATS")
        emitter = current.emitter(None, None)
        await emitter.send(subject, payload.encode(), headers)
        await emitter.flush()

    return publish


class WorkflowEmitter:
    """Sends workflow code's events through the library's local activity."""

    def __init__(self, context: ExecutionContext, settings: WorkflowSettings) -> None:
        self.context = context
        self._settings = settings

    def channel(self, stream: str, task_id: str | None = None) -> Channel:
        """Where workflow code's events on `stream` go; no snapshots, which would cost a
        local activity each: workflow-level tasks rely on their events."""
        settings = self._settings
        return Channel(
            subject=scope_subject(settings.prefix, self.context, None, stream),
            snapshot_subject=None,
            limit=settings.limit,
            # Each event is a local activity: keep one per update, simple to replay.
            coalesce=False,
            clock=workflow.time_ns,
        )

    def encode(
        self, body: dict[str, Any], msg_id: str, what: str, *, snapshot: bool = False
    ) -> tuple[bytes, dict[str, str]]:
        """Serialise an event (a snapshot: for the snapshot stream) and check its size."""
        stream = self._settings.stream_name
        if snapshot:
            stream = subjects.snapshot_stream(stream)
        return encode_event(body, msg_id, stream, self._settings.limit, what)

    async def send(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str],
        then: FollowUp | None = None,
    ) -> None:
        """Send one encoded event through the local activity; `then` is not used (no
        snapshots)."""
        try:
            await workflow.execute_local_activity(
                PUBLISH_ACTIVITY,
                args=[subject, payload.decode(), headers],
                start_to_close_timeout=self._settings.timeout,
                retry_policy=RetryPolicy(maximum_attempts=2),
            )
        except temporalio.exceptions.CancelledError:
            raise  # The workflow is being cancelled: that must go on.
        except temporalio.exceptions.FailureError as e:
            # A local activity's failure arrives as the error itself (an ApplicationError,
            # a TimeoutError), not wrapped in an ActivityError as an activity's would be.
            cause = e.cause if isinstance(e, ActivityError) and e.cause else e
            raise PublishError(f"could not publish an event of workflow code: {cause}") from e
