"""The workflow context: read from `workflow.info()`, carried to activities and child
workflows in a Temporal header.

Workflow code only reads `workflow.info()` and writes headers: deterministic, no I/O, so
replays behave exactly like the first run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import temporalio.api.common.v1
import temporalio.converter
from temporalio import activity, workflow

from mistral_workflows.core.context import ExecutionContext

__all__ = ["HEADER", "activity_context", "with_context", "workflow_context"]

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


def with_context(headers: Headers, context: ExecutionContext) -> dict[str, Any]:
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
