"""The published JSON Schema: the committed file matches the models, and real events from a
real worker validate against it (a broken event does not)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from mistral_workflows._cli_schema import REGENERATE, render
from mistral_workflows.cli import main
from mistral_workflows.schema import SCHEMA_VERSION, STATE_MODELS, document, state_schema
from tests.conversational import todo_workflows
from tests.support import plugged_client, raw_messages, rebuilt, running_worker, unique
from tests.workflows import Call, Parent, RunActivity

COMMITTED = Path(__file__).resolve().parent.parent / "schema" / "events.schema.json"


def drift(committed: str, models: dict[str, Any]) -> str | None:
    """Why the committed text is not the models' schema, or None when they agree."""
    if committed == render(models):
        return None
    return f"{COMMITTED.name} differs from the models: regenerate it with `{REGENERATE}`"


def test_the_committed_schema_matches_the_models():
    """The committed schema is exactly what the models generate today."""
    problem = drift(COMMITTED.read_text(encoding="utf-8"), document())
    assert problem is None, problem


def test_negative_control_a_changed_model_is_drift():
    """Negative control: a field removed from a model makes the check fail, naming the command."""
    changed = copy.deepcopy(document())
    del changed["$defs"]["WorkflowContext"]["properties"]["namespace"]
    problem = drift(render(document()), changed)
    assert problem is not None and REGENERATE in problem


def test_the_schema_is_valid_and_versioned():
    """The document is valid draft 2020-12, names its version, every event type and the
    built-in state models."""
    schema = json.loads(COMMITTED.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["x-schema-version"] == SCHEMA_VERSION
    assert SCHEMA_VERSION in schema["$id"]
    assert len(schema["x-event-types"]) == 17
    assert set(schema["x-state-models"]) == {"todo_list", "working", "chat_turn"}
    assert schema["title"] == "StreamEvent"
    for name in [*schema["x-event-types"], *schema["x-state-models"].values()]:
        assert name in schema["$defs"]


def validator(definition: str = "StreamEvent") -> Draft202012Validator:
    """A validator of the committed schema (the envelope), or of one of its definitions."""
    schema = json.loads(COMMITTED.read_text(encoding="utf-8"))
    if definition == "StreamEvent":
        return Draft202012Validator(schema)
    return Draft202012Validator({"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]})


async def real_messages(temporal_address: str, nats_url: str, task_queue: str) -> list[dict]:
    """Every stored message of a parent workflow with a child, a todo list in each, and a
    run whose todo list fails: tasks, patches, activities and workflows."""
    client = await plugged_client(temporal_address, nats_url)
    ok, failing = unique("schema-ok"), unique("schema-fail")
    async with running_worker(
        client, task_queue, [Parent, RunActivity], [todo_workflows.todo_activity]
    ):
        await client.execute_workflow(
            Parent.run, Call("todo_activity", [False]), id=ok, task_queue=task_queue
        )
        await client.execute_workflow(
            RunActivity.run, Call("todo_activity", [True]), id=failing, task_queue=task_queue
        )
    messages = await raw_messages(nats_url, root_workflow_exec_id=ok)
    messages += await raw_messages(nats_url, root_workflow_exec_id=failing)
    return [{**body, "broker_sequence": seq} for seq, body in messages]


async def test_real_events_validate_and_a_broken_one_does_not(
    temporal_address, nats_url, task_queue
):
    """Every message a real worker stored validates against the committed schema; the same
    messages, broken, do not (negative control)."""
    messages = await real_messages(temporal_address, nats_url, task_queue)
    kinds = {m["data"]["event_type"] for m in messages}
    assert {
        "CUSTOM_TASK_STARTED",
        "CUSTOM_TASK_IN_PROGRESS",
        "CUSTOM_TASK_COMPLETED",
        "CUSTOM_TASK_FAILED",
        "ACTIVITY_TASK_STARTED",
        "ACTIVITY_TASK_COMPLETED",
        "ACTIVITY_TASK_FAILED",
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_EXECUTION_COMPLETED",
    } <= kinds
    check = validator()
    for message in messages:
        errors = [e.message for e in check.iter_errors(message)]
        assert errors == [], (message["data"]["event_type"], errors)
    patch = next(m for m in messages if m["data"]["event_type"] == "CUSTOM_TASK_IN_PROGRESS")
    broken = [
        ("no execution id", lambda m: m["data"].pop("workflow_exec_id")),
        ("unknown type", lambda m: m["data"].update(event_type="CUSTOM_TASK_EXPLODED")),
        ("patch not a list", lambda m: m["data"]["attributes"]["payload"].update(value="x")),
        ("timestamp a string", lambda m: m["data"].update(event_timestamp="now")),
        ("no envelope context", lambda m: m.pop("workflow_context")),
    ]
    for name, breaks in broken:
        bad = copy.deepcopy(patch)
        breaks(bad)
        assert not check.is_valid(bad), name


async def test_real_todo_list_states_validate_against_their_model(
    temporal_address, nats_url, task_queue
):
    """The state a consumer rebuilds for a real todo list validates against `TodoListState`
    in the committed schema; an item with an unknown status does not."""
    from mistral_workflows import StreamEvent

    messages = await real_messages(temporal_address, nats_url, task_queue)
    states = rebuilt([StreamEvent.model_validate(m) for m in messages])
    lists = [task.state for task in states if task.task_type == "todo_list"]
    assert len(lists) == 3
    check = validator(STATE_MODELS["todo_list"].__name__)
    for state in lists:
        assert [e.message for e in check.iter_errors(state)] == []
    bad = copy.deepcopy(lists[0])
    bad["items"][0]["status"] = "exploded"
    assert not check.is_valid(bad)


class Progress(BaseModel):
    """A task's own state model."""

    done: int
    total: int
    note: str | None = None


def test_state_schema_of_a_task_model():
    """`state_schema` gives a task's own model's schema, versioned, usable by a validator."""
    schema = state_schema(Progress)
    assert schema["x-schema-version"] == SCHEMA_VERSION
    check = Draft202012Validator(schema)
    assert check.is_valid({"done": 1, "total": 3})
    assert not check.is_valid({"done": "one", "total": 3})


def test_the_command_writes_the_committed_schema(tmp_path):
    """`mistral-workflows schema -o FILE` writes exactly the committed file."""
    out = tmp_path / "events.schema.json"
    assert main(["schema", "--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == COMMITTED.read_text(encoding="utf-8")


def test_the_command_writes_a_state_model(tmp_path):
    """`--state-model module:Model` writes that model's schema; run as a user would."""
    out = tmp_path / "progress.json"
    command = ["schema", "--state-model", "tests.test_schema:Progress", "-o", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "mistral_workflows.cli", *command],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=COMMITTED.parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text()) == json.loads(render(state_schema(Progress)))


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("tests.test_schema", "is not MODULE:NAME"),
        ("no_such_module_here:Model", "cannot import module 'no_such_module_here'"),
        ("tests.test_schema:Missing", "has no 'Missing'"),
        ("tests.test_schema:drift", "is not a pydantic model"),
    ],
)
def test_a_bad_state_model_is_a_clear_error(spec, says, capsys):
    """A state model that cannot be loaded is one line naming the problem, exit status 1."""
    assert main(["schema", "--state-model", spec]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mistral-workflows: error: --state-model") and says in err
