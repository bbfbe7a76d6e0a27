"""Carry the workflow context into activities and child workflows, and open each
activity attempt's publishing scope.

Workflow code only reads `workflow.info()` and writes headers: deterministic, no I/O, so
replays behave exactly like the first run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import temporalio.api.common.v1
import temporalio.converter
from temporalio import activity, workflow
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    StartActivityInput,
    StartChildWorkflowInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from mistral_workflows.core.context import (
    ActivityRef,
    ExecutionContext,
    Scope,
    reset_scope,
    use_scope,
)
from mistral_workflows.core.errors import MistralWorkflowsError, PublishError
from mistral_workflows.core.publisher import Emitter, Publisher

__all__ = ["HEADER", "StreamingInterceptor"]

HEADER = "mistral-workflows-context"
"""The Temporal header that carries the workflow context (a JSON object)."""

Headers = Mapping[str, temporalio.api.common.v1.Payload]


def _encode(context: ExecutionContext) -> temporalio.api.common.v1.Payload:
    return temporalio.converter.PayloadConverter.default.to_payloads([context.to_dict()])[0]


def _decode(headers: Headers) -> ExecutionContext | None:
    payload = headers.get(HEADER)
    if payload is None:
        return None
    try:
        raw = temporalio.converter.PayloadConverter.default.from_payloads([payload])[0]
    except Exception:  # A malformed header from elsewhere must not break the activity.
        return None
    return ExecutionContext.from_dict(raw)


def _with_context(headers: Headers, context: ExecutionContext) -> dict[str, Any]:
    # Copy, never mutate: the caller's mapping may be shared.
    return {**headers, HEADER: _encode(context)}


def workflow_context() -> ExecutionContext:
    """The context of the running workflow, from `workflow.info()` and the start header."""
    info = workflow.info()
    parent = info.parent.workflow_id if info.parent else None
    from_parent = _decode(info.headers) if parent else None
    if info.root is not None:
        root = info.root.workflow_id
    elif from_parent is not None:
        root = from_parent.root_workflow_exec_id
    else:
        root = parent or info.workflow_id
    return ExecutionContext(
        namespace=info.namespace,
        workflow_name=info.workflow_type,
        workflow_exec_id=info.workflow_id,
        workflow_run_id=info.run_id,
        root_workflow_exec_id=root,
        parent_workflow_exec_id=parent,
    )


def activity_context(info: activity.Info, headers: Headers) -> ExecutionContext:
    """The context of an activity: from its header, else from `activity.info()`."""
    from_header = _decode(headers)
    if from_header is not None:
        return from_header
    exec_id = info.workflow_id or info.activity_id
    return ExecutionContext(
        namespace=info.workflow_namespace or info.namespace,
        workflow_name=info.workflow_type or info.activity_type,
        workflow_exec_id=exec_id,
        workflow_run_id=info.workflow_run_id or "",
        root_workflow_exec_id=exec_id,
        parent_workflow_exec_id=None,
    )


class StreamingInterceptor(Interceptor):
    """Worker interceptor: context headers in workflows, a publishing scope per activity.

    Args:
        publisher: Returns the worker's publisher, or None while it is not connected.
    """

    def __init__(self, publisher: Callable[[], Publisher | None]) -> None:
        self._publisher = publisher

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityInbound(next, self._publisher)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _WorkflowInbound


class _WorkflowInbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound))


class _WorkflowOutbound(WorkflowOutboundInterceptor):
    _context: ExecutionContext | None = None

    def _headers(self, headers: Headers) -> dict[str, Any]:
        if self._context is None:
            self._context = workflow_context()
        return _with_context(headers, self._context)

    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = self._headers(input.headers)
        return super().start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = self._headers(input.headers)
        return super().start_local_activity(input)

    async def start_child_workflow(
        self, input: StartChildWorkflowInput
    ) -> workflow.ChildWorkflowHandle[Any, Any]:
        input.headers = self._headers(input.headers)
        return await super().start_child_workflow(input)


class _ActivityInbound(ActivityInboundInterceptor):
    def __init__(
        self, next: ActivityInboundInterceptor, publisher: Callable[[], Publisher | None]
    ) -> None:
        super().__init__(next)
        self._publisher = publisher

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        publisher = self._publisher()
        if publisher is None:
            return await super().execute_activity(input)
        info = activity.info()
        ref = ActivityRef(info.activity_id, info.activity_type, info.attempt)
        emitter = publisher.emitter(activity_context(info, input.headers), ref)
        token = use_scope(Scope(emitter.context, ref, emitter))
        try:
            result = await super().execute_activity(input)
        except BaseException as e:
            await _flush_after_failure(emitter, e)
            raise
        finally:
            reset_scope(token)
        # The result goes back to Temporal only once every event is stored, so consumers
        # see all of an activity's events before the workflow can react to its result.
        await emitter.flush()
        return result


async def _flush_after_failure(emitter: Emitter, error: BaseException) -> None:
    if isinstance(error, PublishError):
        emitter.discard()
        return
    try:
        await emitter.flush()
    except MistralWorkflowsError as e:
        activity.logger.warning("mistral_workflows: events of a failed attempt were lost: %s", e)
