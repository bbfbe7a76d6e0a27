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
        A JSON Schema (draft 2020-12) with `StreamEvent` (the envelope) at the root, each
        event type and each built-in state model under `$defs`, and `SCHEMA_VERSION` in
        `x-schema-version`.
    """
    models: list[type[BaseModel]] = [events.StreamEvent, *_event_models(), *STATE_MODELS.values()]
    _, top = models_json_schema([(m, "validation") for m in models], ref_template="#/$defs/{model}")
    defs: dict[str, Any] = top["$defs"]
    envelope = defs["StreamEvent"]
    return {
        "$schema": _DIALECT,
        "$id": SCHEMA_ID,
        "x-schema-version": SCHEMA_VERSION,
        "title": "StreamEvent",
        "description": envelope.get("description", ""),
        "$ref": "#/$defs/StreamEvent",
        "x-event-types": {m.__name__: _event_type(m) for m in _event_models()},
        "x-state-models": {kind: m.__name__ for kind, m in STATE_MODELS.items()},
        "$defs": dict(sorted(defs.items())),
    }


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
    return {"$schema": _DIALECT, "x-schema-version": SCHEMA_VERSION, **body}
