"""JSON Schema for the wire format: the envelope, every event type and the state models of
the built-in task types, so a front end (TypeScript, say) can generate its types.

`mistral-workflows schema` writes `document()`; the repository commits it as
`schema/events.schema.json` and a test fails when the models and that file drift.
`state_schema(Model)` gives the same for a `Task`'s own pydantic state model.
"""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from mistral_workflows.agents.state import CHAT_TURN_TYPE, ChatTurnState
from mistral_workflows.conversational._models import (
    TODO_LIST,
    WORKING,
    ChatAssistantWorkingTask,
    TodoListState,
)
from mistral_workflows.core import events

__all__ = ["SCHEMA_ID", "SCHEMA_VERSION", "STATE_MODELS", "document", "state_schema"]

# The version of the wire format's schema. Raise the major number when a consumer built on
# the old schema could misread an event (a field removed, renamed or retyped, a required
# field added); raise the minor number for additions an old consumer ignores (a new optional
# field, a new event type, a new state model).
SCHEMA_VERSION = "1.0"
SCHEMA_ID = f"https://mistral-workflows.dev/schema/{SCHEMA_VERSION}/events.schema.json"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# The state models of the built-in task types, by their stream type (`custom_task_type`).
STATE_MODELS: dict[str, type[BaseModel]] = {
    TODO_LIST: TodoListState,
    WORKING: ChatAssistantWorkingTask,
    CHAT_TURN_TYPE: ChatTurnState,
}


def _event_models() -> list[type[BaseModel]]:
    union = get_args(events.WorkflowEvent)[0]
    return list(get_args(union))


def document() -> dict[str, Any]:
    """The whole schema of the wire format, as `schema/events.schema.json` holds it.

    Returns:
        A JSON Schema (draft 2020-12) whose root is `StreamEvent` (the envelope), with each
        event type and each built-in state model under `$defs`, and `SCHEMA_VERSION` in
        `x-schema-version`.
    """
    models: list[type[BaseModel]] = [events.StreamEvent, *_event_models(), *STATE_MODELS.values()]
    _, top = models_json_schema([(m, "validation") for m in models], ref_template="#/$defs/{model}")
    # Each definition is titled with its Python class name, which generators name types by.
    defs: dict[str, Any] = {
        name: {**_untitled_fields(d), "title": name} for name, d in top["$defs"].items()
    }
    # The envelope is the root itself (not a `$ref` to it): type generators name the root
    # type after its title and read every other definition from `$defs`.
    envelope = defs.pop("StreamEvent")
    return {
        "$schema": _DIALECT,
        "$id": SCHEMA_ID,
        "x-schema-version": SCHEMA_VERSION,
        **envelope,
        "x-event-types": {m.__name__: _event_type(m) for m in _event_models()},
        "x-state-models": {kind: m.__name__ for kind, m in STATE_MODELS.items()},
        "$defs": dict(sorted(defs.items())),
    }


def _untitled_fields(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` without the titles pydantic gives each field ("Task Id"): type generators
    would make a named type of every one."""
    properties = {
        name: {k: v for k, v in field.items() if k != "title"}
        for name, field in schema.get("properties", {}).items()
    }
    return {**schema, "properties": properties} if properties else schema


def _event_type(model: type[BaseModel]) -> str:
    (literal,) = get_args(model.model_fields["event_type"].annotation)
    return str(literal)


def state_schema(model: type[BaseModel] | Any) -> dict[str, Any]:
    """The JSON Schema of a task's state model, so a UI knows a stream type's state shape.

    Args:
        model: A pydantic model, or any type pydantic can describe.

    Returns:
        A JSON Schema (draft 2020-12) carrying `SCHEMA_VERSION` in `x-schema-version`.
    """
    if isinstance(model, type) and issubclass(model, BaseModel):
        body = model.model_json_schema(mode="validation")
    else:
        body = TypeAdapter(model).json_schema(mode="validation")
    body = _untitled_fields(body)
    if "$defs" in body:
        body["$defs"] = {name: _untitled_fields(d) for name, d in body["$defs"].items()}
    return {"$schema": _DIALECT, "x-schema-version": SCHEMA_VERSION, **body}
