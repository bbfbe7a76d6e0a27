"""Mistral Workflows' conversational state models, transcribed field for field from its
`mistralai.workflows.conversational` module (the official `mistralai` client package does
not ship them). Extra fields are refused here, so that a state we send with a field
Mistral does not have, or without one it requires, fails to parse."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchReplaceBlock(Strict):
    search: str
    replace: str


class CreateFileOperation(Strict):
    type: Literal["create"] = "create"
    uri: str
    content: str


class ReadFileOperation(Strict):
    type: Literal["read"] = "read"
    uri: str
    offset: int = 0
    linesRead: int = 0


class ReplaceFileOperation(Strict):
    type: Literal["replace"] = "replace"
    uri: str
    fileContentBefore: str
    blocks: list[SearchReplaceBlock]


class DeleteFileOperation(Strict):
    type: Literal["delete"] = "delete"
    uri: str


class FileToolUIState(Strict):
    type: Literal["file"] = "file"
    toolCallId: str
    operations: list[
        CreateFileOperation | ReadFileOperation | ReplaceFileOperation | DeleteFileOperation
    ]


class ToolResultPending(Strict):
    status: Literal["pending"] = "pending"


class ToolResultRunning(Strict):
    status: Literal["running"] = "running"


class ToolResultFailed(Strict):
    status: Literal["failed"] = "failed"
    error: Any


class ToolResultSuccess(Strict):
    status: Literal["success"] = "success"
    value: Any


class GenericToolUIState(Strict):
    type: Literal["generic_tool"] = "generic_tool"
    toolCallId: str
    name: str
    arguments: dict[str, Any]
    result: ToolResultPending | ToolResultRunning | ToolResultFailed | ToolResultSuccess


class CommandResultRunning(Strict):
    status: Literal["running"] = "running"


class CommandResultSuccess(Strict):
    status: Literal["success"] = "success"
    output: str


class CommandResultFailed(Strict):
    status: Literal["failed"] = "failed"
    error: str


class CommandToolUIState(Strict):
    type: Literal["command"] = "command"
    toolCallId: str
    command: str
    result: CommandResultRunning | CommandResultSuccess | CommandResultFailed


class ChatAssistantWorkingTask(Strict):
    type: Literal["tool", "thinking"] | str = "tool"
    title: str
    content: str
    toolUIState: FileToolUIState | GenericToolUIState | CommandToolUIState | None = None


class TodoListItemState(Strict):
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    status: Literal["todo", "in_progress", "done"] = "todo"
    title: str
    description: str


class TodoListState(Strict):
    items: list[TodoListItemState]
