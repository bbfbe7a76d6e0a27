"""The wire format: one JSON envelope per event, in the shape of Mistral Workflows' events.

The pydantic models parse what consumers read; producers build the same shape as plain
dicts with `envelope.envelope()` (no model per event on the hot path). Fields we add for
our own guarantees (`activity_context`, `task_sequence`) sit where the official client
ignores them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

__all__ = [
    "ACTIVITY_EVENT_TYPES",
    "CUSTOM_TASK_EVENT_TYPES",
    "EVENT_TYPES",
    "TERMINAL_WORKFLOW_EVENT_TYPES",
    "WORKFLOW_EVENT_TYPES",
    "ActivityContext",
    "ActivityTaskCompletedEvent",
    "ActivityTaskFailedEvent",
    "ActivityTaskRetryingEvent",
    "ActivityTaskStartedEvent",
    "CustomTaskCanceledEvent",
    "CustomTaskCompletedEvent",
    "CustomTaskEvent",
    "CustomTaskFailedEvent",
    "CustomTaskInProgressEvent",
    "CustomTaskStartedEvent",
    "CustomTaskTimedOutEvent",
    "EventType",
    "Failure",
    "JSONPatchPayload",
    "JSONPayload",
    "StreamEvent",
    "WorkflowContext",
    "WorkflowEvent",
    "WorkflowExecutionCanceledEvent",
    "WorkflowExecutionCompletedEvent",
    "WorkflowExecutionContinuedAsNewEvent",
    "WorkflowExecutionFailedEvent",
    "WorkflowExecutionStartedEvent",
    "WorkflowTaskFailedEvent",
    "WorkflowTaskTimedOutEvent",
]


class EventType(StrEnum):
    """Every event type on the wire, spelled as Mistral Workflows spells it."""

    CUSTOM_TASK_STARTED = "CUSTOM_TASK_STARTED"
    CUSTOM_TASK_IN_PROGRESS = "CUSTOM_TASK_IN_PROGRESS"
    CUSTOM_TASK_COMPLETED = "CUSTOM_TASK_COMPLETED"
    CUSTOM_TASK_FAILED = "CUSTOM_TASK_FAILED"
    CUSTOM_TASK_CANCELED = "CUSTOM_TASK_CANCELED"
    CUSTOM_TASK_TIMED_OUT = "CUSTOM_TASK_TIMED_OUT"
    ACTIVITY_TASK_STARTED = "ACTIVITY_TASK_STARTED"
    ACTIVITY_TASK_COMPLETED = "ACTIVITY_TASK_COMPLETED"
    ACTIVITY_TASK_RETRYING = "ACTIVITY_TASK_RETRYING"
    ACTIVITY_TASK_FAILED = "ACTIVITY_TASK_FAILED"
    WORKFLOW_EXECUTION_STARTED = "WORKFLOW_EXECUTION_STARTED"
    WORKFLOW_EXECUTION_COMPLETED = "WORKFLOW_EXECUTION_COMPLETED"
    WORKFLOW_EXECUTION_FAILED = "WORKFLOW_EXECUTION_FAILED"
    WORKFLOW_EXECUTION_CANCELED = "WORKFLOW_EXECUTION_CANCELED"
    WORKFLOW_EXECUTION_CONTINUED_AS_NEW = "WORKFLOW_EXECUTION_CONTINUED_AS_NEW"
    WORKFLOW_TASK_TIMED_OUT = "WORKFLOW_TASK_TIMED_OUT"
    WORKFLOW_TASK_FAILED = "WORKFLOW_TASK_FAILED"


def _of(family: str) -> frozenset[EventType]:
    return frozenset(t for t in EventType if t.startswith(family))


CUSTOM_TASK_EVENT_TYPES = _of("CUSTOM_TASK_")
ACTIVITY_EVENT_TYPES = _of("ACTIVITY_TASK_")
WORKFLOW_EVENT_TYPES = _of("WORKFLOW_")
TERMINAL_WORKFLOW_EVENT_TYPES = WORKFLOW_EVENT_TYPES - {
    EventType.WORKFLOW_EXECUTION_STARTED,
    EventType.WORKFLOW_TASK_TIMED_OUT,
    EventType.WORKFLOW_TASK_FAILED,
}
EVENT_TYPES = frozenset(EventType)


class _Model(BaseModel):
    # Unknown fields are ignored so that consumers keep working when producers add fields.
    model_config = ConfigDict(extra="ignore")


class JSONPayload(_Model):
    """A full JSON value: a task's whole state, an activity's input or result."""

    type: Literal["json"] = "json"
    value: Any = None


class JSONPatchPayload(_Model):
    """RFC 6902 operations (plus `append`) that turn the previous state into the new one."""

    type: Literal["json_patch"] = "json_patch"
    value: list[dict[str, Any]]


class Failure(_Model):
    """What went wrong, as a human-readable message."""

    message: str


class _CustomTaskAttributes(_Model):
    custom_task_id: str
    custom_task_type: str
    # Our addition: the per-task event index (STARTED is 0), so a consumer can tell a
    # missed or repeated event from a new one.
    task_sequence: int | None = None


class CustomTaskStartedAttributes(_CustomTaskAttributes):
    payload: JSONPayload | None = None


class CustomTaskInProgressAttributes(_CustomTaskAttributes):
    payload: Annotated[JSONPayload | JSONPatchPayload, Field(discriminator="type")]


class CustomTaskCompletedAttributes(_CustomTaskAttributes):
    payload: JSONPayload


class CustomTaskFailedAttributes(_CustomTaskAttributes):
    failure: Failure


class CustomTaskCanceledAttributes(_CustomTaskAttributes):
    reason: str | None = None


class CustomTaskTimedOutAttributes(_CustomTaskAttributes):
    timeout_type: str | None = None


class ActivityTaskStartedAttributes(_Model):
    task_id: str
    activity_name: str
    input: JSONPayload
    attempt: int = 1


class ActivityTaskCompletedAttributes(_Model):
    task_id: str
    activity_name: str
    result: JSONPayload


class ActivityTaskFailureAttributes(_Model):
    task_id: str
    activity_name: str
    attempt: int
    failure: Failure


class WorkflowExecutionStartedAttributes(_Model):
    task_id: str
    workflow_name: str
    input: JSONPayload
    attempt: int = 1


class WorkflowExecutionCompletedAttributes(_Model):
    task_id: str
    result: JSONPayload
    attempt: int = 1


class WorkflowExecutionFailedAttributes(_Model):
    task_id: str
    failure: Failure
    attempt: int = 1


class WorkflowExecutionCanceledAttributes(_Model):
    task_id: str
    reason: str | None = None
    attempt: int = 1


class WorkflowExecutionContinuedAsNewAttributes(_Model):
    task_id: str
    new_execution_run_id: str
    workflow_name: str
    input: JSONPayload


class WorkflowTaskTimedOutAttributes(_Model):
    task_id: str
    timeout_type: str | None = None


class WorkflowTaskFailedAttributes(_Model):
    task_id: str
    failure: Failure


class _Event(_Model):
    event_id: str
    event_timestamp: int
    """Unix time in nanoseconds when the producer created the event."""
    workflow_name: str
    workflow_exec_id: str
    root_workflow_exec_id: str
    parent_workflow_exec_id: str | None
    workflow_run_id: str


class CustomTaskStartedEvent(_Event):
    """A task began; `attributes.payload.value` is its initial state."""

    event_type: Literal[EventType.CUSTOM_TASK_STARTED]
    attributes: CustomTaskStartedAttributes


class CustomTaskInProgressEvent(_Event):
    """A task's state changed; the payload is a JSON patch against the previous state."""

    event_type: Literal[EventType.CUSTOM_TASK_IN_PROGRESS]
    attributes: CustomTaskInProgressAttributes


class CustomTaskCompletedEvent(_Event):
    """A task ended normally; the payload is its final state."""

    event_type: Literal[EventType.CUSTOM_TASK_COMPLETED]
    attributes: CustomTaskCompletedAttributes


class CustomTaskFailedEvent(_Event):
    """A task ended with an exception."""

    event_type: Literal[EventType.CUSTOM_TASK_FAILED]
    attributes: CustomTaskFailedAttributes


class CustomTaskCanceledEvent(_Event):
    """A task ended because its activity was cancelled."""

    event_type: Literal[EventType.CUSTOM_TASK_CANCELED]
    attributes: CustomTaskCanceledAttributes


class CustomTaskTimedOutEvent(_Event):
    """A task ended because its activity timed out."""

    event_type: Literal[EventType.CUSTOM_TASK_TIMED_OUT]
    attributes: CustomTaskTimedOutAttributes


class ActivityTaskStartedEvent(_Event):
    """An activity attempt started."""

    event_type: Literal[EventType.ACTIVITY_TASK_STARTED]
    attributes: ActivityTaskStartedAttributes


class ActivityTaskCompletedEvent(_Event):
    """An activity returned its result."""

    event_type: Literal[EventType.ACTIVITY_TASK_COMPLETED]
    attributes: ActivityTaskCompletedAttributes


class ActivityTaskRetryingEvent(_Event):
    """An activity attempt failed and Temporal will retry it."""

    event_type: Literal[EventType.ACTIVITY_TASK_RETRYING]
    attributes: ActivityTaskFailureAttributes


class ActivityTaskFailedEvent(_Event):
    """An activity failed for good."""

    event_type: Literal[EventType.ACTIVITY_TASK_FAILED]
    attributes: ActivityTaskFailureAttributes


class WorkflowExecutionStartedEvent(_Event):
    """A workflow run started."""

    event_type: Literal[EventType.WORKFLOW_EXECUTION_STARTED]
    attributes: WorkflowExecutionStartedAttributes


class WorkflowExecutionCompletedEvent(_Event):
    """A workflow run completed."""

    event_type: Literal[EventType.WORKFLOW_EXECUTION_COMPLETED]
    attributes: WorkflowExecutionCompletedAttributes


class WorkflowExecutionFailedEvent(_Event):
    """A workflow run failed."""

    event_type: Literal[EventType.WORKFLOW_EXECUTION_FAILED]
    attributes: WorkflowExecutionFailedAttributes


class WorkflowExecutionCanceledEvent(_Event):
    """A workflow run was cancelled."""

    event_type: Literal[EventType.WORKFLOW_EXECUTION_CANCELED]
    attributes: WorkflowExecutionCanceledAttributes


class WorkflowExecutionContinuedAsNewEvent(_Event):
    """A workflow run continued as a new run."""

    event_type: Literal[EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW]
    attributes: WorkflowExecutionContinuedAsNewAttributes


class WorkflowTaskTimedOutEvent(_Event):
    """A workflow task timed out (Temporal retries it)."""

    event_type: Literal[EventType.WORKFLOW_TASK_TIMED_OUT]
    attributes: WorkflowTaskTimedOutAttributes


class WorkflowTaskFailedEvent(_Event):
    """A workflow task failed (Temporal retries it)."""

    event_type: Literal[EventType.WORKFLOW_TASK_FAILED]
    attributes: WorkflowTaskFailedAttributes


CustomTaskEvent = (
    CustomTaskStartedEvent
    | CustomTaskInProgressEvent
    | CustomTaskCompletedEvent
    | CustomTaskFailedEvent
    | CustomTaskCanceledEvent
    | CustomTaskTimedOutEvent
)

WorkflowEvent = Annotated[
    CustomTaskEvent
    | ActivityTaskStartedEvent
    | ActivityTaskCompletedEvent
    | ActivityTaskRetryingEvent
    | ActivityTaskFailedEvent
    | WorkflowExecutionStartedEvent
    | WorkflowExecutionCompletedEvent
    | WorkflowExecutionFailedEvent
    | WorkflowExecutionCanceledEvent
    | WorkflowExecutionContinuedAsNewEvent
    | WorkflowTaskTimedOutEvent
    | WorkflowTaskFailedEvent,
    Field(discriminator="event_type"),
]


class WorkflowContext(_Model):
    """Where an event comes from: the workflow execution and its place in the tree."""

    namespace: str
    workflow_name: str
    workflow_exec_id: str
    parent_workflow_exec_id: str | None = None
    root_workflow_exec_id: str | None = None


class ActivityContext(_Model):
    """Our addition: the activity attempt that produced an event (absent for workflow code)."""

    activity_id: str
    activity_name: str
    attempt: int


class StreamEvent(_Model):
    """One message of the stream: the envelope around a typed event.

    `broker_sequence` is the JetStream stream sequence of the message, filled in by the
    consumer from the message metadata: strictly increasing, never reused.
    """

    stream: str
    timestamp: datetime | None = None
    data: WorkflowEvent
    workflow_context: WorkflowContext
    activity_context: ActivityContext | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    broker_sequence: int | None = None
    trace_context: SkipJsonSchema[dict[str, str] | None] = Field(default=None, exclude=True)
    """The W3C trace headers the event was stored with (the producing activity's span),
    or None; not in its JSON nor schema (see `mistral_workflows.tracing`)."""
