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

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mistral_workflows.consumer import Gap, TaskState, TaskStates, subscribe, subscribe_sync
from mistral_workflows.core.encryption import Encryption
from mistral_workflows.core.errors import (
    BrokerConnectionError,
    ConfigurationError,
    DecryptionError,
    InvalidStateError,
    MistralWorkflowsError,
    NotInPluggedActivityError,
    PatchError,
    PayloadTooLargeError,
    PublishError,
    StreamMismatchError,
    TokenError,
)
from mistral_workflows.core.events import StreamEvent

if TYPE_CHECKING:
    from mistral_workflows._activity import activity
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
    "PatchError",
    "PayloadTooLargeError",
    "PublishError",
    "StreamEvent",
    "StreamMismatchError",
    "Task",
    "TaskState",
    "TaskStates",
    "TokenError",
    "activity",
    "subscribe",
    "subscribe_sync",
]

__version__ = "0.1.0"

# The worker side needs temporalio: it is imported on first use, so that a consumer
# script (`import mistral_workflows`, `mistral_workflows.consumer`) starts without it.
_WORKER_SIDE = {
    "activity": "mistral_workflows._activity",
    "MistralWorkflowsPlugin": "mistral_workflows.worker",
    "Task": "mistral_workflows.core.task",
}


def __getattr__(name: str) -> Any:
    module = _WORKER_SIDE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
