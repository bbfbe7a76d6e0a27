"""The state shapes of Mistral Workflows' conversational task types, field for field.

`todo_list` tasks carry a `TodoListState`; `working` tasks carry a
`ChatAssistantWorkingTask`, whose optional `toolUIState` says what a tool is doing. The
field names (camelCase included) and literal values are Mistral's, so that its UIs and
ours read the same events. These models import nothing from Temporal: consumers may use
them to read states (`TodoListState.model_validate(task.state)`).
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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

TODO_LIST = "todo_list"
"""The task type of a todo list."""
WORKING = "working"
"""The task type of a working task (a tool running, or the model thinking)."""


class SearchReplaceBlock(BaseModel):
    search: str
    replace: str


class CreateFileOperation(BaseModel):
    type: Literal["create"] = "create"
    uri: str
    content: str


class ReadFileOperation(BaseModel):
    type: Literal["read"] = "read"
    uri: str
    offset: int = 0
    linesRead: int = 0


class ReplaceFileOperation(BaseModel):
    type: Literal["replace"] = "replace"
    uri: str
    fileContentBefore: str
    blocks: list[SearchReplaceBlock]


class DeleteFileOperation(BaseModel):
    type: Literal["delete"] = "delete"
    uri: str


FileOperation = CreateFileOperation | ReadFileOperation | ReplaceFileOperation | DeleteFileOperation


class FileToolUIState(BaseModel):
    """File operations a tool makes (create, read, replace, delete)."""

    type: Literal["file"] = "file"
    toolCallId: str
    operations: list[FileOperation]


class ToolResultPending(BaseModel):
    status: Literal["pending"] = "pending"


class ToolResultRunning(BaseModel):
    status: Literal["running"] = "running"


class ToolResultFailed(BaseModel):
    status: Literal["failed"] = "failed"
    error: Any


class ToolResultSuccess(BaseModel):
    status: Literal["success"] = "success"
    value: Any


ToolResult = ToolResultPending | ToolResultRunning | ToolResultFailed | ToolResultSuccess


class GenericToolUIState(BaseModel):
    """Any tool call: its name, arguments and pending/running/success/failed result."""

    type: Literal["generic_tool"] = "generic_tool"
    toolCallId: str
    name: str
    arguments: dict[str, Any]
    result: ToolResult


class CommandResultRunning(BaseModel):
    status: Literal["running"] = "running"


class CommandResultSuccess(BaseModel):
    status: Literal["success"] = "success"
    output: str


class CommandResultFailed(BaseModel):
    status: Literal["failed"] = "failed"
    error: str


CommandResult = CommandResultRunning | CommandResultSuccess | CommandResultFailed


class CommandToolUIState(BaseModel):
    """A command line being run, and its running/success/failed result."""

    type: Literal["command"] = "command"
    toolCallId: str
    command: str
    result: CommandResult


ToolUIState = FileToolUIState | GenericToolUIState | CommandToolUIState


class ChatAssistantWorkingTask(BaseModel):
    """The state of a `working` task: what the assistant is doing right now.

    `type` is `"tool"` (a tool call; `toolUIState` may say which and how it went) or
    `"thinking"`; other strings are allowed, as in Mistral's model.
    """

    model_config = ConfigDict(title=WORKING)

    type: Literal["tool", "thinking"] | str = "tool"
    title: str
    content: str
    toolUIState: ToolUIState | None = None


TodoListItemStatus = Literal["todo", "in_progress", "done"]


class TodoListItemState(BaseModel):
    """One step of a todo list as it is sent."""

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    status: TodoListItemStatus = "todo"
    title: str
    description: str


class TodoListState(BaseModel):
    """The state of a `todo_list` task."""

    model_config = ConfigDict(title=TODO_LIST)
    items: list[TodoListItemState]
