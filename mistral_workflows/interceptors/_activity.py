"""The activity side: a publishing scope per attempt, and the attempt's lifecycle events."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput

from mistral_workflows.core.context import ActivityRef, Scope, reset_scope, use_scope
from mistral_workflows.core.errors import MistralWorkflowsError, PublishError
from mistral_workflows.core.events import stable_id
from mistral_workflows.core.publisher import Emitter, Publisher
from mistral_workflows.interceptors._context import activity_context
from mistral_workflows.interceptors._lifecycle import (
    activity_failure_event,
    json_payload,
    publish_lifecycle,
)

__all__ = ["ActivityInbound"]


class ActivityInbound(ActivityInboundInterceptor):
    """Opens the attempt's scope for `Task`, and reports the attempt's start and end."""

    def __init__(
        self,
        next: ActivityInboundInterceptor,
        publisher: Callable[[], Publisher | None],
        internal: frozenset[str],
    ) -> None:
        super().__init__(next)
        self._publisher = publisher
        self._internal = internal

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        publisher = self._publisher()
        info = activity.info()
        if publisher is None or info.activity_type in self._internal:
            return await super().execute_activity(input)
        ref = ActivityRef(info.activity_id, info.activity_type, info.attempt)
        context = activity_context(info, input.headers)
        emitter = publisher.emitter(context, ref)
        report = _Reporter(emitter, info, ref)
        await report.started(input.args)
        scope = Scope(context, ref, emitter)
        token = use_scope(scope)
        try:
            with _deadline(info, scope):
                result = await super().execute_activity(input)
        except BaseException as e:
            await report.failed(e, scope.timed_out)
            raise
        finally:
            reset_scope(token)
        await report.completed(result)
        # The result goes back to Temporal only once every event is stored, so consumers
        # see all of an activity's events before the workflow can react to its result.
        await emitter.flush()
        return result


class _Reporter:
    def __init__(self, emitter: Emitter, info: activity.Info, ref: ActivityRef) -> None:
        self._emitter = emitter
        self._info = info
        self._ref = ref
        self._base = {"task_id": info.activity_id, "activity_name": info.activity_type}

    async def started(self, args: Any) -> None:
        inputs = json_payload(activity.payload_converter(), args)
        await self._publish("ACTIVITY_TASK_STARTED", input=inputs, attempt=self._info.attempt)

    async def completed(self, result: Any) -> None:
        await self._publish("ACTIVITY_TASK_COMPLETED", result=_result(result))

    async def failed(self, error: BaseException, timed_out: str | None) -> None:
        """Report the attempt's end (best effort: the activity's own error comes first)."""
        emitter = self._emitter
        if isinstance(error, PublishError):
            emitter.discard()
            return
        event_type, message = activity_failure_event(self._info, error, timed_out)
        try:
            await self._publish(
                event_type, attempt=self._info.attempt, failure={"message": message}
            )
            await emitter.flush()
        except MistralWorkflowsError as e:
            activity.logger.warning("mistral_workflows: events of a failed attempt lost: %s", e)

    async def _publish(self, event_type: str, **attributes: Any) -> None:
        ctx, info = self._emitter.context, self._info
        assert ctx is not None
        where = (ctx.workflow_exec_id, ctx.workflow_run_id, info.activity_id)
        event_id = stable_id(*where, str(info.attempt), event_type)
        attrs = {**self._base, **attributes}
        await publish_lifecycle(self._emitter, ctx, self._ref, event_type, event_id, attrs)


@contextmanager
def _deadline(info: activity.Info, scope: Scope) -> Iterator[None]:
    """End the attempt when Temporal's start-to-close or schedule-to-close deadline passes.

    The server has then given up on the attempt (its result would be rejected) and may
    have started the next one; without heartbeats nothing tells the worker, so the
    attempt would run on and never report its end. Local activities are timed by the SDK.
    """
    kind, at = _first_deadline(info)
    task = asyncio.current_task()
    if at is None or task is None or info.is_local:
        yield
        return

    def expire() -> None:
        scope.timed_out = kind
        task.cancel()

    delay = (at - datetime.now(UTC)).total_seconds()
    timer = asyncio.get_running_loop().call_later(max(delay, 0.0), expire)
    try:
        yield
    except asyncio.CancelledError:
        if scope.timed_out is not None:
            task.uncancel()  # Our own cancellation: the attempt ends here, reported as such.
        raise
    finally:
        timer.cancel()


def _first_deadline(info: activity.Info) -> tuple[str, datetime | None]:
    deadlines = []
    if info.start_to_close_timeout:
        deadlines.append((info.started_time + info.start_to_close_timeout, "START_TO_CLOSE"))
    if info.schedule_to_close_timeout:
        deadlines.append(
            (info.scheduled_time + info.schedule_to_close_timeout, "SCHEDULE_TO_CLOSE")
        )
    if not deadlines:
        return "", None
    at, kind = min(deadlines)
    return kind, at


def _result(result: Any) -> dict[str, Any]:
    return json_payload(activity.payload_converter(), [result])
