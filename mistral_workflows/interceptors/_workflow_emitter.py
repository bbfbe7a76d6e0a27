"""Events of workflow code: sent by the library's local activity, not by the workflow.

Workflow code must stay deterministic and do no I/O, so its events are published by a
local activity of the library (`PUBLISH_ACTIVITY`): its result is recorded in history,
so a replay does not publish again, and a workflow task that fails and runs again
publishes events with the same ids, which JetStream drops as duplicates.

The local activity puts each event in the worker's `Relay`, which stores them in order
and re-sends across NATS outages. A lifecycle event is handed over: the local activity
waits `HAND_OFF_WAIT` at most for it to be stored, so a NATS outage never holds a workflow
task for long. An event of a `Task` in workflow code is waited for until stored.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from mistral_workflows.core.relay import Relay

__all__ = [
    "HAND_OFF_WAIT",
    "PUBLISH_ACTIVITY",
    "WorkflowEmitter",
    "WorkflowSettings",
    "publish_activity",
]

PUBLISH_ACTIVITY = "mistral_workflows.publish"
"""The library's local activity that publishes events for workflow code."""


@dataclass(frozen=True, slots=True)
class WorkflowSettings:
    """What workflow code needs to know of the plugin's settings."""

    prefix: str
    stream_name: str
    limit: int
    timeout: timedelta


HAND_OFF_WAIT = 0.5
"""Seconds a lifecycle event's local activity waits for the event to be stored: while
NATS answers, it is stored before the workflow goes on (and so before the events of the
activities it then starts, wherever they run); during an outage the relay stores it later."""

# The local activity of a lifecycle event returns within HAND_OFF_WAIT, whatever NATS
# does: this timeout only ends one on a worker so starved (its event loop held by CPU-bound
# work) that it did not even get to return. The event is in the relay by then.
_HAND_OFF_TIMEOUT = timedelta(seconds=10)


def publish_activity(
    relay: Callable[[], Relay | None],
    prepare: Callable[[str, dict[str, str]], bytes] | None = None,
) -> Callable[..., Any]:
    """The local activity that puts one encoded event in the worker's relay and, unless it
    is handed off, waits until it is stored. `prepare`, if given, makes the bytes sent of
    the event's payload and headers (the worker encrypts there)."""

    @activity.defn(name=PUBLISH_ACTIVITY)
    async def publish(
        subject: str,
        payload: str,
        headers: dict[str, str],
        hand_off: bool = False,
        execution: str = "",
    ) -> None:
        data = payload.encode() if prepare is None else prepare(payload, headers)
        current = relay()
        if current is None:
            raise ApplicationError("the worker is not connected to NATS")
        stored = current.put(subject, data, headers, execution)
        wait = HAND_OFF_WAIT if hand_off else current.publisher.persist_timeout
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(stored), wait)
        if hand_off or (stored.done() and stored.result()):
            return
        if stored.done():
            fate = "it was given up (see the worker's log)"
        else:
            fate = "it stays queued in the worker, which re-sends it"
        message = (
            f"an event of workflow code was not stored within {wait:g}s "
            f"({current.publisher.url}); {fate}"
        )
        if current.publisher.strict:
            raise PublishError(message)
        activity.logger.error("mistral_workflows: %s", message)

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
        """Send one encoded event through the local activity, which waits until it is
        stored; `then` is not used (no snapshots)."""
        await self._publish(subject, payload, headers, hand_off=False)

    async def hand_off(self, subject: str, payload: bytes, headers: dict[str, str]) -> None:
        """Hand one encoded lifecycle event to the worker's relay, which stores it, in
        order, once NATS can: this waits `HAND_OFF_WAIT` at most."""
        await self._publish(subject, payload, headers, hand_off=True)

    async def _publish(
        self, subject: str, payload: bytes, headers: dict[str, str], *, hand_off: bool
    ) -> None:
        timeout, attempts = self._settings.timeout, 2
        if hand_off:
            timeout, attempts = _HAND_OFF_TIMEOUT, 1
        args = [subject, payload.decode(), headers, hand_off, self.context.workflow_exec_id]
        try:
            await workflow.execute_local_activity(
                PUBLISH_ACTIVITY,
                args=args,
                start_to_close_timeout=timeout,
                retry_policy=RetryPolicy(maximum_attempts=attempts),
            )
        except temporalio.exceptions.CancelledError:
            raise  # The workflow is being cancelled: that must go on.
        except temporalio.exceptions.FailureError as e:
            # A local activity's failure arrives as the error itself (an ApplicationError,
            # a TimeoutError), not wrapped in an ActivityError as an activity's would be.
            cause = e.cause if isinstance(e, ActivityError) and e.cause else e
            raise PublishError(f"could not publish an event of workflow code: {cause}") from e
