"""The read side: subscribe to events and rebuild task state. Never imports the worker."""

from mistral_workflows.consumer._reducer import TaskState, TaskStates
from mistral_workflows.consumer._subscribe import Gap, subscribe, subscribe_sync
from mistral_workflows.consumer._view import HumanView

__all__ = ["Gap", "HumanView", "TaskState", "TaskStates", "subscribe", "subscribe_sync"]
