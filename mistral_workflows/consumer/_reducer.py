"""Rebuilding each task's state from its events: STARTED, then patches, in order."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from mistral_workflows.core.encryption import Encryption, sealed_with
from mistral_workflows.core.errors import DecryptionError
from mistral_workflows.core.events import (
    CUSTOM_TASK_EVENT_TYPES,
    CustomTaskCanceledEvent,
    CustomTaskCompletedEvent,
    CustomTaskEvent,
    CustomTaskFailedEvent,
    CustomTaskInProgressEvent,
    CustomTaskStartedEvent,
    CustomTaskTimedOutEvent,
    EventType,
    JSONPatchPayload,
    StreamEvent,
)
from mistral_workflows.core.patch import apply

__all__ = ["TaskState", "TaskStates"]

Status = Literal["running", "completed", "failed", "canceled", "timed_out"]


@dataclass
class TaskState:
    """What a consumer knows of one task."""

    task_id: str
    task_type: str
    workflow_exec_id: str
    state: Any = None
    status: Status = "running"
    attempt: int = 1
    sequence: int = -1
    """The last applied `task_sequence` (-1 before STARTED)."""
    failure: str | None = None
    broker_sequence: int | None = None
    _early: dict[int, CustomTaskEvent] = field(default_factory=dict, repr=False)


class TaskStates:
    """The live state of every task seen, rebuilt from the events fed to `apply`.

    Events of one task are applied in `task_sequence` order: a repeated event is ignored,
    an early one waits for those before it, and events of an older activity attempt are
    dropped once a newer attempt has started (its state replaces the old one).

    Args:
        encryption: Decrypt task state encrypted by the workers (the same keys).

    Raises:
        DecryptionError: from `apply`, for encrypted state without `encryption` or with
            keys that do not open it.
    """

    def __init__(self, *, encryption: Encryption | None = None) -> None:
        self._tasks: dict[str, TaskState] = {}
        self._encryption = encryption

    def apply(self, event: StreamEvent) -> TaskState | None:
        """Feed one event; returns the task whose state changed, or None."""
        if event.data.event_type not in CUSTOM_TASK_EVENT_TYPES:
            return None
        if self._encryption is not None:
            event = self._encryption.decrypt_event(event)
        data = event.data
        assert isinstance(data, _CUSTOM_TASK_EVENTS)
        if self._encryption is None and (key_id := sealed_with(event)) is not None:
            raise DecryptionError(
                f"task {data.attributes.custom_task_id} ({data.attributes.custom_task_type}) "
                f"has encrypted state (key id {key_id!r}): pass encryption=Encryption(keys=...) "
                "to TaskStates or to subscribe"
            )
        attrs = data.attributes
        attempt = event.activity_context.attempt if event.activity_context else 1
        task = self._tasks.get(attrs.custom_task_id)
        if task is None or attempt > task.attempt:
            task = TaskState(attrs.custom_task_id, attrs.custom_task_type, data.workflow_exec_id)
            task.attempt = attempt
            self._tasks[task.task_id] = task
        elif attempt < task.attempt:
            return None
        if event.metadata.get("snapshot"):
            return task if _seed(task, data) else None
        return task if _feed(task, data, event.broker_sequence) else None

    def __getitem__(self, task_id: str) -> TaskState:
        return self._tasks[task_id]

    def get(self, task_id: str) -> TaskState | None:
        """The task with this id, if seen."""
        return self._tasks.get(task_id)

    def __iter__(self) -> Iterator[TaskState]:
        return iter(self._tasks.values())

    def __len__(self) -> int:
        return len(self._tasks)


_CUSTOM_TASK_EVENTS = (
    CustomTaskStartedEvent,
    CustomTaskInProgressEvent,
    CustomTaskCompletedEvent,
    CustomTaskFailedEvent,
    CustomTaskCanceledEvent,
    CustomTaskTimedOutEvent,
)


def _seed(task: TaskState, data: CustomTaskEvent) -> bool:
    """Take a snapshot as the task's state, unless the task is already further along."""
    seq = data.attributes.task_sequence
    if seq is None or seq <= task.sequence:
        return False
    if isinstance(data, CustomTaskInProgressEvent):
        data = CustomTaskStartedEvent.model_validate(
            {**data.model_dump(), "event_type": EventType.CUSTOM_TASK_STARTED}
        )
    _change(task, data)
    task.sequence = seq
    task._early = {k: v for k, v in task._early.items() if k > seq}
    while (early := task._early.pop(task.sequence + 1, None)) is not None:
        _change(task, early)
        task.sequence += 1
    return True


def _feed(task: TaskState, data: CustomTaskEvent, broker_sequence: int | None) -> bool:
    seq = data.attributes.task_sequence
    if seq is None:  # A producer without sequence numbers: trust arrival order.
        _change(task, data)
        return True
    if seq <= task.sequence:
        return False
    if seq > task.sequence + 1:
        task._early[seq] = data
        return False
    _change(task, data)
    task.sequence, task.broker_sequence = seq, broker_sequence
    while (early := task._early.pop(task.sequence + 1, None)) is not None:
        _change(task, early)
        task.sequence += 1
    return True


def _change(task: TaskState, data: CustomTaskEvent) -> None:
    if isinstance(data, CustomTaskStartedEvent):
        initial = data.attributes.payload
        task.state = copy.deepcopy(initial.value) if initial else None
    elif isinstance(data, CustomTaskInProgressEvent):
        change = data.attributes.payload
        if isinstance(change, JSONPatchPayload):
            task.state = apply(task.state, change.value)
        else:
            task.state = copy.deepcopy(change.value)
    elif isinstance(data, CustomTaskCompletedEvent):
        task.state = copy.deepcopy(data.attributes.payload.value)
        task.status = "completed"
    elif isinstance(data, CustomTaskFailedEvent):
        task.status, task.failure = "failed", data.attributes.failure.message
    elif isinstance(data, CustomTaskCanceledEvent):
        task.status, task.failure = "canceled", data.attributes.reason
    else:
        task.status = "timed_out"
