"""Temporal interceptors: workflow context into activities, lifecycle events, and the
publishing scope that `Task` uses in activities and in workflow code."""

from mistral_workflows.interceptors._context import HEADER
from mistral_workflows.interceptors._interceptor import StreamingInterceptor
from mistral_workflows.interceptors._workflow_emitter import (
    PUBLISH_ACTIVITY,
    WorkflowSettings,
    publish_activity,
)

__all__ = [
    "HEADER",
    "PUBLISH_ACTIVITY",
    "StreamingInterceptor",
    "WorkflowSettings",
    "publish_activity",
]
