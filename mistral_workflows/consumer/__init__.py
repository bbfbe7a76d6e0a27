"""The read side: subscribe to events and rebuild task state. Never imports the worker."""

from mistral_workflows.consumer._reducer import TaskState, TaskStates
from mistral_workflows.consumer._subscribe import subscribe

__all__ = ["TaskState", "TaskStates", "subscribe"]
