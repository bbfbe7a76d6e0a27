"""mistral_workflows: stream live task state out of Temporal workflows through NATS JetStream.

import mistral_workflows as workflows
from mistral_workflows.core.task import Task

@workflows.activity()
async def chat_activity(messages: list) -> dict:
    async with Task(type="token-stream", state={"tokens": []}) as task:
        async for token in llm.stream(messages):
            await task.update_state({"tokens": task.state["tokens"] + [token]})
    return {"response": "".join(task.state["tokens"])}
"""

from mistral_workflows._activity import activity
from mistral_workflows.consumer import Gap, TaskState, TaskStates, subscribe, subscribe_sync
from mistral_workflows.core.encryption import DecryptionError, Encryption
from mistral_workflows.core.errors import (
    BrokerConnectionError,
    ConfigurationError,
    InvalidStateError,
    MistralWorkflowsError,
    NotInPluggedActivityError,
    PayloadTooLargeError,
    PublishError,
    StreamMismatchError,
)
from mistral_workflows.core.events import StreamEvent
from mistral_workflows.core.task import Task
from mistral_workflows.worker import MistralWorkflowsPlugin

__all__ = [
    "BrokerConnectionError",
    "ConfigurationError",
    "DecryptionError",
    "Encryption",
    "Gap",
    "InvalidStateError",
    "MistralWorkflowsError",
    "MistralWorkflowsPlugin",
    "NotInPluggedActivityError",
    "PayloadTooLargeError",
    "PublishError",
    "StreamEvent",
    "StreamMismatchError",
    "Task",
    "TaskState",
    "TaskStates",
    "activity",
    "subscribe",
    "subscribe_sync",
]

__version__ = "0.1.0"
