"""Our conversational models have Mistral's fields, names and literals exactly, and what
they send parses with Mistral's models (transcribed in mistral_shapes.py)."""

from __future__ import annotations

import pydantic
import pytest

import mistral_workflows.conversational as ours
from tests.conversational import mistral_shapes as theirs

NAMES = [
    "ChatAssistantWorkingTask",
    "CommandResultFailed",
    "CommandResultRunning",
    "CommandResultSuccess",
    "CommandToolUIState",
    "CreateFileOperation",
    "DeleteFileOperation",
    "FileToolUIState",
    "GenericToolUIState",
    "ReadFileOperation",
    "ReplaceFileOperation",
    "SearchReplaceBlock",
    "TodoListItemState",
    "TodoListState",
    "ToolResultFailed",
    "ToolResultPending",
    "ToolResultRunning",
    "ToolResultSuccess",
]


@pytest.mark.parametrize("name", NAMES)
def test_each_model_has_mistrals_fields(name):
    """Same field names, in the same order, with the same required ones and defaults."""
    mine, reference = getattr(ours, name).model_fields, getattr(theirs, name).model_fields
    assert list(mine) == list(reference)
    for field, info in mine.items():
        assert info.is_required() == reference[field].is_required(), field
        if not info.is_required() and info.default_factory is None:
            assert info.default == reference[field].default, field


def test_every_tool_ui_state_round_trips_through_mistrals_models():
    """Each tool UI state and result we can build dumps to JSON that Mistral's models
    parse back to the same JSON."""
    states = [
        ours.GenericToolUIState(toolCallId="t", name="n", arguments={"a": 1}, result=result)
        for result in (
            ours.ToolResultPending(),
            ours.ToolResultRunning(),
            ours.ToolResultSuccess(value=[1]),
            ours.ToolResultFailed(error="e"),
        )
    ]
    states += [
        ours.CommandToolUIState(toolCallId="t", command="ls", result=result)
        for result in (
            ours.CommandResultRunning(),
            ours.CommandResultSuccess(output="o"),
            ours.CommandResultFailed(error="e"),
        )
    ]
    operations = [
        ours.CreateFileOperation(uri="file:///a", content="x"),
        ours.ReadFileOperation(uri="file:///a", offset=2, linesRead=3),
        ours.ReplaceFileOperation(
            uri="file:///a",
            fileContentBefore="old",
            blocks=[ours.SearchReplaceBlock(search="old", replace="new")],
        ),
        ours.DeleteFileOperation(uri="file:///a"),
    ]
    states.append(ours.FileToolUIState(toolCallId="t", operations=operations))
    for state in states:
        task = ours.ChatAssistantWorkingTask(title="T", content="C", toolUIState=state)
        sent = task.model_dump(mode="json")
        assert theirs.ChatAssistantWorkingTask.model_validate(sent).model_dump(mode="json") == sent


def test_negative_control_a_field_mistral_lacks_is_refused():
    """The reference models refuse a field they do not have, so the checks would catch
    a state sent with an extra or misspelt field."""
    item = {"id": "1", "status": "todo", "title": "t", "description": "d"}
    theirs.TodoListItemState.model_validate(item)
    with pytest.raises(pydantic.ValidationError):
        theirs.TodoListItemState.model_validate({**item, "error": "boom"})
    with pytest.raises(pydantic.ValidationError):
        theirs.TodoListItemState.model_validate({**item, "status": "failed"})


def test_the_task_types_are_mistrals():
    """The task types are Mistral's `todo_list` and `working` (its models' titles)."""
    assert ours.TODO_LIST == "todo_list" == ours.TodoListState.model_json_schema()["title"]
    assert ours.WORKING == "working" == ours.ChatAssistantWorkingTask.model_json_schema()["title"]
