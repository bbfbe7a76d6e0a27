"""Where events come from: the workflow execution, the activity attempt, and the live scope.

The interceptors build an `ExecutionContext` in workflow code, carry it to activities in a
Temporal header, and open a `Scope` around each activity attempt; `Task` finds that scope
through a ContextVar.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from mistral_workflows.core import subjects
from mistral_workflows.core.errors import NotInPluggedActivityError

__all__ = [
    "ActivityRef",
    "Channel",
    "EventSink",
    "ExecutionContext",
    "FollowUp",
    "Scope",
    "current_scope",
    "scope_subject",
    "use_scope",
]

_FIELDS = (
    "namespace",
    "workflow_name",
    "workflow_exec_id",
    "workflow_run_id",
    "root_workflow_exec_id",
    "parent_workflow_exec_id",
)


@dataclass(frozen=True, slots=True)
class ExecutionContext:
    """The workflow run an event belongs to and its place in the workflow tree."""

    namespace: str
    workflow_name: str
    workflow_exec_id: str
    workflow_run_id: str
    root_workflow_exec_id: str
    parent_workflow_exec_id: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        """The context as a JSON object (the header's content)."""
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_dict(cls, raw: object) -> ExecutionContext | None:
        """Read a context written by `to_dict`; None if `raw` is not a well-formed one."""
        if not isinstance(raw, dict):
            return None
        *ids, parent = (raw.get(name) for name in _FIELDS)
        if not all(isinstance(v, str) for v in ids) or not isinstance(parent, str | None):
            return None
        namespace, name, exec_id, run_id, root = (str(v) for v in ids)
        return cls(namespace, name, exec_id, run_id, root, parent)


@dataclass(frozen=True, slots=True)
class ActivityRef:
    """The activity attempt that produces events."""

    activity_id: str
    activity_name: str
    attempt: int


FollowUp = Callable[[int], "tuple[str, bytes, dict[str, str]] | None"]
"""Builds a message to send once an event is stored, from the event's stream sequence."""


def scope_subject(
    prefix: str, context: ExecutionContext, activity: ActivityRef | None, stream: str
) -> str:
    """The subject of the events on `stream` of one workflow run or activity attempt."""
    return subjects.event_subject(
        prefix,
        namespace=context.namespace,
        stream=stream,
        workflow_name=context.workflow_name,
        root_exec_id=context.root_workflow_exec_id,
        parent_exec_id=context.parent_workflow_exec_id,
        exec_id=context.workflow_exec_id,
        activity_name=activity.activity_name if activity else None,
        activity_id=activity.activity_id if activity else None,
        attempt=activity.attempt if activity else None,
    )


# The most an encrypted value adds beyond its base64 growth: wrapper, key id, nonce, tag.
_SEALED_OVERHEAD = 192


@dataclass(frozen=True, slots=True)
class Channel:
    """Where the events of one stream of a scope go, and the rules they follow: what a
    producer reads of its sink once, before its first event."""

    subject: str
    """The subject of the events."""
    snapshot_subject: str | None
    """The subject of a task's snapshots; None when the sink keeps none."""
    limit: int
    """The largest event, headers included."""
    coalesce: bool
    """Whether a task may fold updates into one event (see `max_delay_ns`)."""
    clock: Callable[[], int]
    """The event time in Unix nanoseconds."""
    encrypted: bool = False
    """Whether task state is encrypted, which makes events larger."""
    max_delay_ns: int = 0
    """How long a folded update may wait before it is handed to the socket (0: never
    folded)."""
    busy: Callable[[], bool] = lambda: False
    """Whether an event sent now would wait (for room in the acknowledgement window, or
    behind an event already waiting) instead of going out at once."""
    unacknowledged: Callable[[], bool] = lambda: False
    """Whether the scope's last event still waits for its acknowledgement."""
    hand_over: Callable[[], None] = lambda: None
    """Write what is buffered for the socket now, without waiting for the event loop to
    turn (for a producer that does not yield)."""

    def encoded_size(self, size: int, values: int) -> int:
        """An upper bound of what `size` bytes of JSON holding `values` values become once
        encoded: encrypted values grow by a third (base64) plus their wrapper, key id,
        nonce and tag."""
        if not self.encrypted:
            return size
        return size * 4 // 3 + values * _SEALED_OVERHEAD


class EventSink(Protocol):
    """Where a scope's events go: JetStream directly (activities) or via local activities
    (workflow code, which must not do I/O itself).

    A producer reads its `channel` once, then for each event calls `encode` and `send`.
    """

    def channel(self, stream: str, task_id: str | None = None) -> Channel:
        """Where the events on `stream` go (with `task_id`: and that task's snapshots)."""
        ...

    def encode(
        self, body: dict[str, Any], msg_id: str, what: str, *, snapshot: bool = False
    ) -> tuple[bytes, dict[str, str]]:
        """Serialise one event (or a task snapshot) and check its size.

        Raises:
            PayloadTooLargeError: the event is over the limit; nothing was sent.
        """
        ...

    async def send(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str],
        then: FollowUp | None = None,
    ) -> None:
        """Send one encoded event; `then` builds a follow-up from its stream sequence."""
        ...


@dataclass(slots=True)
class Scope:
    """One activity attempt of a plugged worker: what a `Task` needs to publish."""

    context: ExecutionContext
    activity: ActivityRef | None
    emitter: EventSink
    task_counts: dict[str, int] = field(default_factory=dict)
    timed_out: str | None = None
    """Set (to the timeout's kind) when the library ends the attempt at its deadline."""
    heartbeat_missed: bool = False
    """Set when the attempt went longer than its heartbeat timeout without a heartbeat:
    Temporal refusing a later heartbeat (cancellation details `not_found`) is that timeout."""
    loop: asyncio.AbstractEventLoop | None = None
    """The worker's event loop, which publishes the events of a `def` activity's thread
    (None in workflow code)."""

    def next_task_ordinal(self, task_type: str) -> int:
        """Number the tasks of one type in start order, so task ids are deterministic."""
        n = self.task_counts.get(task_type, 0)
        self.task_counts[task_type] = n + 1
        return n


_scope: ContextVar[Scope | None] = ContextVar("mistral_workflows_scope", default=None)


def current_scope() -> Scope:
    """The scope of the running activity attempt.

    Raises:
        NotInPluggedActivityError: outside an activity of a worker with the plugin.
    """
    scope = _scope.get()
    if scope is None:
        raise NotInPluggedActivityError(
            "Task can only be used inside a Temporal activity run by a worker whose client "
            "was connected with plugins=[mistral_workflows.MistralWorkflowsPlugin(...)]; "
            "register the plugin on Client.connect (or on the Worker)."
        )
    return scope


def use_scope(scope: Scope | None) -> Any:
    """Make `scope` current; returns a token for `reset_scope`."""
    return _scope.set(scope)


def reset_scope(token: Any) -> None:
    """Restore the scope that was current before `use_scope`."""
    _scope.reset(token)
