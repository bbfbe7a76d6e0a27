"""`EventFilter`: which events a reader wants, checked once, named as the envelope names them.

`subscribe`, the CLI's flags and the gateway's query parameters all end up as one
`EventFilter`. Its ids, names and stream become a server-side subject filter (`subject`); the
event types, and whatever a second subject or a snapshot may bring in, are checked on each
event (`matches`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mistral_workflows.core import subjects
from mistral_workflows.core.errors import ConfigurationError
from mistral_workflows.core.events import EVENT_TYPES, EventType, StreamEvent

__all__ = ["SCOPES", "EventFilter"]

SCOPES = ("workflow", "activity")
"""The scopes of an event: emitted by workflow code, or by an activity."""

_TEXT = (
    "workflow_exec_id",
    "root_workflow_exec_id",
    "parent_workflow_exec_id",
    "workflow_name",
    "activity_name",
    "activity_id",
    "namespace",
)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events to read: every given field must match; None matches any.

    The values are checked when the filter is built, so a bad one raises before anything
    connects. An `activity_name` or `activity_id` implies the activity scope, and `scope`
    then reads "activity". `event_types` takes any iterable of type names (or one name) and
    is kept as a frozenset of `EventType`.

    Raises:
        ConfigurationError: A value is not a str, the stream type is invalid, the scope is
            unknown, or an event type is unknown.
    """

    workflow_exec_id: str | None = None
    """Only events of this workflow execution."""
    root_workflow_exec_id: str | None = None
    """Only events of the workflow tree under this root."""
    parent_workflow_exec_id: str | None = None
    """Only events of the children of this workflow."""
    workflow_name: str | None = None
    """Only events of workflows of this type."""
    activity_name: str | None = None
    """Only events of activities of this type."""
    activity_id: str | None = None
    """Only events of the activity with this id (all its attempts)."""
    stream: str | None = None
    """Only events of this stream type (a `Task` type, or `subjects.LIFECYCLE_STREAM`)."""
    event_types: Iterable[str] | None = None
    """Only events of these types."""
    namespace: str | None = None
    """Only events of this Temporal namespace."""
    scope: str | None = None
    """"workflow" for events of workflow code only, "activity" for activities only."""

    def __post_init__(self) -> None:
        if self.stream is not None and self.stream != subjects.LIFECYCLE_STREAM:
            subjects.validate_stream_type(self.stream)
        for name in _TEXT:
            _check_text(name, getattr(self, name))
        if self.activity_name is not None or self.activity_id is not None:
            object.__setattr__(self, "scope", "activity")
        if self.scope is not None and self.scope not in SCOPES:
            raise ConfigurationError(f"scope must be 'workflow' or 'activity', not {self.scope!r}")
        object.__setattr__(self, "event_types", _event_types(self.event_types))

    def subject(self, prefix: str) -> str:
        """The JetStream subject filter of the ids, names, stream and scope under `prefix`.

        Args:
            prefix: A prefix accepted by `subjects.validate_prefix`.

        Returns:
            A subject filter with wildcards, e.g. ``"workflows.*.*.*.*.*.my-id.>"``.
        """
        return subjects.filter_subject(prefix, self)

    def wants(self, event_type: str) -> bool:
        """Whether events of this type are wanted."""
        return self.event_types is None or event_type in self.event_types

    def matches(self, event: StreamEvent) -> bool:
        """Whether an event passes the stream, scope, activity and type filters.

        Those are what an event read through another subject (the lifecycle events read
        to see a workflow end) or a snapshot may miss; the ids are left to the subject.
        """
        if self.stream is not None and event.stream != self.stream:
            return False
        context = event.activity_context
        if self.scope is not None and (context is None) != (self.scope == "workflow"):
            return False
        # A wanted activity implies the activity scope: `context` is known here.
        if context is not None and (
            self.activity_name not in (None, context.activity_name)
            or self.activity_id not in (None, context.activity_id)
        ):
            return False
        return self.wants(event.data.event_type)


def _check_text(name: str, value: object) -> None:
    # `subjects.token` needs a str; anything else would fail later with a bare TypeError.
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(
            f"the {name} filter must be a str, or None to match any, not "
            f"{subjects.short_repr(value)} ({type(value).__name__}); pass the id as text"
        )


def _event_types(event_types: Iterable[str] | None) -> frozenset[EventType] | None:
    if event_types is None:
        return None
    if isinstance(event_types, str):
        event_types = [event_types]
    wanted = frozenset(event_types)
    unknown = wanted - EVENT_TYPES
    if unknown:
        raise ConfigurationError(
            f"unknown event type(s) {sorted(map(str, unknown))}; "
            f"known types: {sorted(map(str, EVENT_TYPES))}"
        )
    return frozenset(EventType(t) for t in wanted)
