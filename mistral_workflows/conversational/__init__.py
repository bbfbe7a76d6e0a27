"""Mistral Workflows' conversational task types: todo lists and working tasks.

    from mistral_workflows.conversational import TodoList, TodoListItem

The state models (`TodoListState`, `ChatAssistantWorkingTask` and the tool UI states)
import nothing from Temporal; `TodoList` and `TodoListItem` (a `Task`) load the worker
side on first use, like `mistral_workflows.Task`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mistral_workflows.conversational._models import (
    TODO_LIST,
    WORKING,
    ChatAssistantWorkingTask,
    CommandResult,
    CommandResultFailed,
    CommandResultRunning,
    CommandResultSuccess,
    CommandToolUIState,
    CreateFileOperation,
    DeleteFileOperation,
    FileOperation,
    FileToolUIState,
    GenericToolUIState,
    ReadFileOperation,
    ReplaceFileOperation,
    SearchReplaceBlock,
    TodoListItemState,
    TodoListItemStatus,
    TodoListState,
    ToolResult,
    ToolResultFailed,
    ToolResultPending,
    ToolResultRunning,
    ToolResultSuccess,
    ToolUIState,
)

if TYPE_CHECKING:
    from mistral_workflows.conversational._todo import TodoList, TodoListItem

__all__ = [
    "TODO_LIST",
    "WORKING",
    "ChatAssistantWorkingTask",
    "CommandResult",
    "CommandResultFailed",
    "CommandResultRunning",
    "CommandResultSuccess",
    "CommandToolUIState",
    "CreateFileOperation",
    "DeleteFileOperation",
    "FileOperation",
    "FileToolUIState",
    "GenericToolUIState",
    "ReadFileOperation",
    "ReplaceFileOperation",
    "SearchReplaceBlock",
    "TodoList",
    "TodoListItem",
    "TodoListItemState",
    "TodoListItemStatus",
    "TodoListState",
    "ToolResult",
    "ToolResultFailed",
    "ToolResultPending",
    "ToolResultRunning",
    "ToolResultSuccess",
    "ToolUIState",
]

_WORKER_SIDE = {"TodoList", "TodoListItem"}


def __getattr__(name: str) -> Any:
    if name not in _WORKER_SIDE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from mistral_workflows.conversational import _todo

    value = getattr(_todo, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
