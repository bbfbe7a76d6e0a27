"""The workflow side: context headers, lifecycle events, and `Task` in workflow code.

The events of workflow code go out through `WorkflowEmitter` (`_workflow_emitter.py`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import temporalio.exceptions
from temporalio import workflow
from temporalio.exceptions import ActivityError
from temporalio.worker import (
    ExecuteWorkflowInput,
    HandleSignalInput,
    HandleUpdateInput,
    StartActivityInput,
    StartChildWorkflowInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowOutboundInterceptor,
)

from mistral_workflows.core.context import ExecutionContext, Scope, reset_scope, use_scope
from mistral_workflows.core.envelope import failure_message, stable_id
from mistral_workflows.core.errors import PublishError
from mistral_workflows.core.events import EventType
from mistral_workflows.interceptors._context import Headers, with_context, workflow_context
from mistral_workflows.interceptors._lifecycle import json_payload, lifecycle_message
from mistral_workflows.interceptors._workflow_emitter import (
    PUBLISH_ACTIVITY,
    WorkflowEmitter,
    WorkflowSettings,
)

__all__ = ["inbound_class"]

# Marks the runs that report lifecycle events, so that histories of runs started before
# the plugin was installed still replay (their workflows then report nothing).
_PATCH = "mistral-workflows-lifecycle"


def inbound_class(settings: WorkflowSettings) -> type[WorkflowInboundInterceptor]:
    """The workflow interceptor class, bound to the plugin's settings."""
    return type("MistralWorkflowsInbound", (_WorkflowInbound,), {"settings": settings})


class _WorkflowInbound(WorkflowInboundInterceptor):
    settings: WorkflowSettings
    _scope: Scope | None = None
    _emitter: WorkflowEmitter | None = None

    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound))

    def scope(self) -> Scope:
        if self._scope is None:
            context = workflow_context()
            self._emitter = WorkflowEmitter(context, self.settings)
            self._scope = Scope(context, None, self._emitter)
        return self._scope

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        scope = self.scope()
        token = use_scope(scope)
        assert self._emitter is not None
        report = _Reporter(scope, self._emitter) if workflow.patched(_PATCH) else None
        try:
            if report:
                await report.started(input.args)
            result = await super().execute_workflow(input)
        except (temporalio.exceptions.CancelledError, asyncio.CancelledError):
            if report:
                await report.ended(EventType.WORKFLOW_EXECUTION_CANCELED, reason="cancel requested")
            raise
        except temporalio.exceptions.FailureError as e:
            # Only Temporal failures fail the workflow; other exceptions fail the workflow
            # task, which Temporal retries, so they are not the end of the run.
            if report:
                await report.ended(EventType.WORKFLOW_EXECUTION_FAILED, failure=_failure(e))
            raise
        finally:
            reset_scope(token)
        if report:
            await report.ended(EventType.WORKFLOW_EXECUTION_COMPLETED, result=_json([result]))
        return result

    async def handle_signal(self, input: HandleSignalInput) -> None:
        token = use_scope(self.scope())
        try:
            await super().handle_signal(input)
        finally:
            reset_scope(token)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        token = use_scope(self.scope())
        try:
            return await super().handle_update_handler(input)
        finally:
            reset_scope(token)


class _Reporter:
    """Publishes a run's lifecycle events, each with an id derived from the run."""

    def __init__(self, scope: Scope, emitter: WorkflowEmitter) -> None:
        self._scope = scope
        self._emitter = emitter
        self._attempt = workflow.info().attempt

    async def started(self, args: Any) -> None:
        info, ctx = workflow.info(), self._scope.context
        if info.continued_run_id and info.attempt == 1:
            # The run that continued as new cannot know its successor's id: we report it.
            previous = dataclasses.replace(ctx, workflow_run_id=info.continued_run_id)
            await self._publish(
                previous,
                EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
                new_execution_run_id=info.run_id,
                workflow_name=ctx.workflow_name,
                input=_json(args),
            )
        await self._publish(
            ctx,
            EventType.WORKFLOW_EXECUTION_STARTED,
            workflow_name=ctx.workflow_name,
            input=_json(args),
            attempt=self._attempt,
        )

    async def ended(self, event_type: EventType, **attributes: Any) -> None:
        await self._publish(self._scope.context, event_type, attempt=self._attempt, **attributes)

    async def _publish(
        self, ctx: ExecutionContext, event_type: EventType, **attributes: Any
    ) -> None:
        event_id = stable_id(ctx.workflow_exec_id, ctx.workflow_run_id, event_type)
        attrs = {"task_id": ctx.workflow_exec_id, **attributes}
        message = lifecycle_message(self._emitter, ctx, None, event_type, event_id, attrs)
        try:
            await self._emitter.hand_off(*message)
        except PublishError as e:
            # The workflow must not depend on NATS: a failed hand-off is only logged (the
            # relay refused the event, or the worker was too busy to answer in time).
            workflow.logger.warning("mistral_workflows: %s may not be published: %s", event_type, e)


class _WorkflowOutbound(WorkflowOutboundInterceptor):
    _context: ExecutionContext | None = None

    def _headers(self, headers: Headers) -> dict[str, Any]:
        if self._context is None:
            self._context = workflow_context()
        return with_context(headers, self._context)

    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = self._headers(input.headers)
        return super().start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        if input.activity != PUBLISH_ACTIVITY:
            input.headers = self._headers(input.headers)
        return super().start_local_activity(input)

    async def start_child_workflow(
        self, input: StartChildWorkflowInput
    ) -> workflow.ChildWorkflowHandle[Any, Any]:
        input.headers = self._headers(input.headers)
        return await super().start_child_workflow(input)


def _json(values: Any) -> dict[str, Any]:
    return json_payload(workflow.payload_converter(), list(values))


def _failure(error: BaseException) -> dict[str, str]:
    # A workflow failure wraps the real cause (an activity's error, say): show that.
    cause = error.cause if isinstance(error, ActivityError) and error.cause else error
    return {"message": failure_message(cause)}
