"""The worker interceptor that the plugin installs."""

from __future__ import annotations

from collections.abc import Callable

from temporalio.worker import (
    ActivityInboundInterceptor,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from mistral_workflows.core.publisher import Publisher
from mistral_workflows.core.relay import Relay
from mistral_workflows.interceptors._activity import ActivityInbound
from mistral_workflows.interceptors._workflow import inbound_class
from mistral_workflows.interceptors._workflow_emitter import PUBLISH_ACTIVITY, WorkflowSettings

__all__ = ["StreamingInterceptor"]


class StreamingInterceptor(Interceptor):
    """Context headers and lifecycle events in workflows; a publishing scope per activity.

    Args:
        publisher: Returns the worker's publisher, or None while it is not connected.
        relay: Returns the worker's relay of the events of workflow code (or None).
        settings: The plugin settings that workflow code needs.
    """

    def __init__(
        self,
        publisher: Callable[[], Publisher | None],
        relay: Callable[[], Relay | None],
        settings: WorkflowSettings,
    ) -> None:
        self._publisher = publisher
        self._relay = relay
        self._workflow_class = inbound_class(settings)

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return ActivityInbound(next, self._publisher, self._relay, frozenset({PUBLISH_ACTIVITY}))

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return self._workflow_class
