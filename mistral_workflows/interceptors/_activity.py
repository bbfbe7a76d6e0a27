"""The activity side: a publishing scope per attempt, and the attempt's lifecycle events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import CancelledError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ActivityOutboundInterceptor,
    ExecuteActivityInput,
)

from mistral_workflows.core.context import (
    ActivityRef,
    ExecutionContext,
    Scope,
    reset_scope,
    use_scope,
)
from mistral_workflows.core.emitter import Emitter
from mistral_workflows.core.envelope import stable_id
from mistral_workflows.core.errors import MistralWorkflowsError, PublishError
from mistral_workflows.core.events import EventType
from mistral_workflows.core.logfields import bind_log_fields
from mistral_workflows.core.publisher import Publisher
from mistral_workflows.core.relay import Relay
from mistral_workflows.interceptors._context import activity_context
from mistral_workflows.interceptors._lifecycle import (
    activity_failure_event,
    json_payload,
    publish_lifecycle,
)

__all__ = ["ActivityInbound"]

# The SDK sends heartbeats to the server at most once per throttle interval: 80% of the
# heartbeat timeout, capped by the worker's `max_heartbeat_throttle_interval` (this is
# its default). A heartbeat can reach the server that much later than it was made.
_THROTTLE_SHARE = 0.8
_MAX_THROTTLE_SECONDS = 60.0


class ActivityInbound(ActivityInboundInterceptor):
    """Opens the attempt's scope for `Task`, and reports the attempt's start and end."""

    def __init__(
        self,
        next: ActivityInboundInterceptor,
        publisher: Callable[[], Publisher | None],
        relay: Callable[[], Relay | None],
        internal: frozenset[str],
    ) -> None:
        super().__init__(next)
        self._publisher = publisher
        self._relay = relay
        self._internal = internal
        self._watchdog: _Watchdog | None = None

    def init(self, outbound: ActivityOutboundInterceptor) -> None:
        super().init(_HeartbeatOutbound(outbound, self._heartbeat))

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        publisher = self._publisher()
        info = activity.info()
        if publisher is None or info.activity_type in self._internal:
            return await super().execute_activity(input)
        ref = ActivityRef(info.activity_id, info.activity_type, info.attempt)
        context = activity_context(info, input.headers)
        # Every line the library logs during the attempt names it (logfields.LogFields).
        with bind_log_fields(
            workflow_exec_id=context.workflow_exec_id,
            root_workflow_exec_id=context.root_workflow_exec_id,
            activity_id=info.activity_id,
            attempt=info.attempt,
        ):
            return await self._attempt(input, publisher, info, ref, context)

    async def _attempt(
        self,
        input: ExecuteActivityInput,
        publisher: Publisher,
        info: activity.Info,
        ref: ActivityRef,
        context: ExecutionContext,
    ) -> Any:
        relay = self._relay()
        if relay is not None:
            # Events its workflow handed over on this worker and NATS has not stored yet
            # (an outage) go first: the attempt's events then follow them in the stream.
            # Not for longer than half a heartbeat timeout, which would end the attempt.
            wait = publisher.persist_timeout
            if info.heartbeat_timeout:
                wait = min(wait, info.heartbeat_timeout.total_seconds() / 2)
            await relay.stored_before(context.workflow_exec_id, wait)
        emitter = publisher.emitter(context, ref)
        report = _Reporter(emitter, info, ref)
        await report.started(input.args)
        # A `def` activity runs in a thread (temporalio passes the executor): its tasks
        # publish through this loop, and it learns of a timeout at its next call.
        scope = Scope(context, ref, emitter, loop=asyncio.get_running_loop())
        token = use_scope(scope)
        self._watchdog = _Watchdog(info, scope, threaded=input.executor is not None)
        try:
            with self._watchdog.watching():
                result = await super().execute_activity(input)
        except BaseException as e:
            await report.failed(e, _timeout(scope))
            raise
        finally:
            reset_scope(token)
        await report.completed(result)
        # The result goes back to Temporal only once every event is stored, so consumers
        # see all of an activity's events before the workflow can react to its result.
        await emitter.flush()
        publisher.metrics.report()
        return result

    def _heartbeat(self) -> None:
        if self._watchdog is not None:
            self._watchdog.beat()


class _HeartbeatOutbound(ActivityOutboundInterceptor):
    """Tells the attempt's watchdog about each heartbeat."""

    def __init__(self, next: ActivityOutboundInterceptor, beat: Callable[[], None]) -> None:
        super().__init__(next)
        self._beat = beat

    def heartbeat(self, *details: Any) -> None:
        self._beat()
        super().heartbeat(*details)


def _timeout(scope: Scope) -> str | None:
    """The timeout that ended the attempt, if one did."""
    if scope.timed_out is None and scope.heartbeat_missed:
        details = activity.cancellation_details()
        if details is not None and details.not_found:
            return "HEARTBEAT"  # Temporal refused a heartbeat that came after the timeout.
    return scope.timed_out


class _Reporter:
    def __init__(self, emitter: Emitter, info: activity.Info, ref: ActivityRef) -> None:
        self._emitter = emitter
        self._info = info
        self._ref = ref
        self._base = {"task_id": info.activity_id, "activity_name": info.activity_type}

    async def started(self, args: Any) -> None:
        inputs = json_payload(activity.payload_converter(), args)
        await self._publish(
            EventType.ACTIVITY_TASK_STARTED, input=inputs, attempt=self._info.attempt
        )

    async def completed(self, result: Any) -> None:
        await self._publish(EventType.ACTIVITY_TASK_COMPLETED, result=_result(result))

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

    async def _publish(self, event_type: EventType, **attributes: Any) -> None:
        ctx, info = self._emitter.context, self._info
        assert ctx is not None
        where = (ctx.workflow_exec_id, ctx.workflow_run_id, info.activity_id)
        event_id = stable_id(*where, str(info.attempt), event_type)
        attrs = {**self._base, **attributes}
        await publish_lifecycle(self._emitter, ctx, self._ref, event_type, event_id, attrs)


class _Watchdog:
    """Ends the attempt once Temporal has timed it out.

    Past its start-to-close or schedule-to-close deadline, or once it has gone longer than
    its heartbeat timeout without a heartbeat reaching the server, the server has given up
    on the attempt (its result would be rejected) and may have started the next one.
    Nothing tells the worker unless the attempt heartbeats again, so it would run on and
    never report its end. Local activities are timed by the SDK.
    """

    def __init__(self, info: activity.Info, scope: Scope, *, threaded: bool = False) -> None:
        self._scope = scope
        self._threaded = threaded
        self._task = asyncio.current_task()
        self._kind, self._at = _first_deadline(info)
        timeout = info.heartbeat_timeout.total_seconds() if info.heartbeat_timeout else 0.0
        self._heartbeat_timeout = timeout
        # A heartbeat reaches the server at most one throttle interval after it is made, and
        # the server times the attempt out one heartbeat timeout after the last one it got
        # (or the start): this long after the last heartbeat, it surely has.
        self._heartbeat_window = timeout + min(_THROTTLE_SHARE * timeout, _MAX_THROTTLE_SECONDS)
        self._last_beat = time.monotonic()
        self._missed_at = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._active = not info.is_local and (self._at is not None or timeout > 0)

    def beat(self) -> None:
        """Note a heartbeat: one that comes after the heartbeat timeout may be refused.

        Raises:
            CancelledError: a `def` activity's attempt has timed out (it stops here, as an
                `async def` activity does at its next await).
        """
        if self._threaded and self._scope.timed_out is not None:
            raise CancelledError(f"activity {self._scope.timed_out} timeout")
        now, timeout = time.monotonic(), self._heartbeat_timeout
        if not timeout:
            return
        if now - self._last_beat > timeout:
            self._scope.heartbeat_missed, self._missed_at = True, now
        elif self._scope.heartbeat_missed and now - self._missed_at > self._heartbeat_window:
            # The late heartbeat was accepted: a later refusal has another cause.
            self._scope.heartbeat_missed = activity.is_cancelled()
        self._last_beat = now

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Run the attempt's body; end it with CancelledError at the first timeout."""
        task = self._task
        if task is None or not self._active:
            yield
            return
        self._arm()
        try:
            yield
        finally:
            if self._timer is not None:
                self._timer.cancel()
            if self._scope.timed_out is not None and not self._threaded:
                task.uncancel()  # Our own cancellation: the attempt ends here, reported as such.
        if self._scope.timed_out is not None:
            # The attempt caught the cancellation and returned: Temporal rejects the result,
            # so the attempt ends as if it had let the cancellation through.
            raise asyncio.CancelledError(f"activity {self._scope.timed_out} timeout")

    def _arm(self) -> None:
        due = [self._last_beat + self._heartbeat_window] if self._heartbeat_timeout else []
        if self._at is not None:
            due.append(self._at)
        delay = min(due) - time.monotonic()
        self._timer = asyncio.get_running_loop().call_later(max(delay, 0.0), self._check)

    def _check(self) -> None:
        now = time.monotonic()
        if self._at is not None and now >= self._at:
            self._expire(self._kind)
        elif self._heartbeat_timeout and now >= self._last_beat + self._heartbeat_window:
            self._expire("HEARTBEAT")
        else:  # A heartbeat came meanwhile (or the loop's clock ran a little ahead).
            self._arm()

    def _expire(self, kind: str) -> None:
        assert self._task is not None
        self._scope.timed_out = kind
        if not self._threaded:
            self._task.cancel()
        # A thread cannot be cancelled from here: it stops at its next Task call or
        # heartbeat, which raise temporalio's CancelledError (see task_thread.py).


def _first_deadline(info: activity.Info) -> tuple[str, float | None]:
    """The first of the start-to-close and schedule-to-close deadlines, on the monotonic
    clock."""
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
    return kind, time.monotonic() + (at - datetime.now(UTC)).total_seconds()


def _result(result: Any) -> dict[str, Any]:
    return json_payload(activity.payload_converter(), [result])
