"""What importing the package loads: the read side starts without Temporal or the worker."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

WRITE_SIDE = [
    "temporalio",
    "mistral_workflows.core.publisher",
    "mistral_workflows.core.task",
    "mistral_workflows.interceptors",
    "mistral_workflows.worker",
]


def loaded_after(code: str) -> list[str]:
    """The write-side modules a fresh interpreter holds after running `code`."""
    report = f"print(json.dumps([m for m in {WRITE_SIDE!r} if m in sys.modules]))"
    probe = f"{code}\nimport json, sys\n{report}"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    "code",
    [
        "import mistral_workflows",
        "import mistral_workflows.consumer",
        "from mistral_workflows import subscribe, TaskStates, Encryption, DecryptionError",
        "from mistral_workflows.conversational import TodoListState, ChatAssistantWorkingTask",
    ],
)
def test_the_read_side_loads_no_temporal_and_no_worker(code):
    """Consumer scripts import neither temporalio nor the worker side of the package."""
    assert loaded_after(code) == []


# The agent integrations' frameworks are optional extras: nothing imports them until the
# integration module itself is imported.
FRAMEWORKS = ["openai", "mistralai", "pydantic_ai", "agents", "temporalio.contrib"]


def frameworks_after(code: str) -> list[str]:
    """The optional frameworks a fresh interpreter holds after running `code`."""
    report = f"print(json.dumps([m for m in {FRAMEWORKS!r} if m in sys.modules]))"
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\n{report}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    "code",
    [
        "import mistral_workflows",
        "import mistral_workflows.agents",
        "from mistral_workflows.agents import stream_chat_completion, ChatTurnState",
    ],
)
def test_agents_room_loads_no_framework_and_no_temporal(code):
    """The chat-stream helper and the state models import no framework and no temporalio."""
    assert frameworks_after(code) == []
    assert loaded_after(code) == []


def test_negative_control_the_check_sees_a_framework():
    """Negative control: a framework imported after the package is seen (the client that
    imports under every dependency floor CI tests, unlike pydantic-ai)."""
    assert "openai" in frameworks_after("import mistral_workflows.agents\nimport openai")


def test_negative_control_the_check_sees_temporal_when_task_is_used():
    """Negative control: touching `mistral_workflows.Task` loads temporalio; the check sees it."""
    loaded = loaded_after("import mistral_workflows\nmistral_workflows.Task")
    assert "temporalio" in loaded
    assert "mistral_workflows.core.task" in loaded


@pytest.mark.parametrize("name", ["MistralWorkflowsPlugin", "activity"])
def test_the_worker_side_loads_on_first_use(name):
    """The lazily imported names load the worker side when they are first touched."""
    loaded = loaded_after(f"import mistral_workflows\nmistral_workflows.{name}")
    assert "temporalio" in loaded


# Which rooms of the package each room may import: everything points inward to `core`, and
# the read side (consumer, gateway) never reaches the Temporal glue. docs/architecture.md
# draws the same picture.
MAY_IMPORT = {
    "core": set(),
    "consumer": {"core"},
    "_activity": {"temporalio"},
    "interceptors": {"core", "temporalio"},
    "worker": {"core", "interceptors", "temporalio"},
    "dev": {"core"},
    "gateway": {"core", "consumer"},
    "tracing": {"core"},
    "cli": {"_cli_nats", "_cli_schema", "core", "consumer", "dev", "gateway"},
    "_cli_schema": {"core", "schema"},
    # The schema gathers the wire format's models and the built-in task types' state models.
    "schema": {"core", "conversational", "agents"},
    "_cli_nats": {"core"},
    # TodoList is a Task (so core) and ids its items with workflow.uuid4() in workflow code.
    "conversational": {"core", "temporalio"},
    "agents": {"core", "conversational", "temporalio"},
}
# Temporal is the write side's. In `core`, Task reads an activity's cancellation (and holds
# temporalio's thread cancellation back while a `def` activity's call runs on the loop), and
# the failure message names an ApplicationError's own type (importing it only when called).
TEMPORAL_IN_CORE = {"task.py", "task_thread.py", "envelope.py"}
PACKAGE = Path(__file__).resolve().parent.parent / "mistral_workflows"


def imports_of(path: Path) -> set[str]:
    """The absolute module names `path` imports, at any depth."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def room_imports() -> dict[str, set[str]]:
    """For each room (`core`, `consumer`, ... `cli`), the other rooms and outside top-level
    packages that its modules import."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        room = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for name in imports_of(path):
            parts = name.split(".")
            if parts[0] == "mistral_workflows" and len(parts) > 1 and parts[1] != room:
                found.setdefault(room, set()).add(parts[1])
            elif parts[0] == "temporalio" and not (
                room == "core" and path.name in TEMPORAL_IN_CORE
            ):
                found.setdefault(room, set()).add("temporalio")
    return found


def wrong_imports(found: dict[str, set[str]]) -> dict[str, set[str]]:
    """The imports in `found` that `MAY_IMPORT` does not allow (the package's own
    `__init__` may import every room)."""
    return {
        room: wrong
        for room, names in found.items()
        if room in MAY_IMPORT and (wrong := names - MAY_IMPORT[room])
    }


def test_rooms_import_only_inward():
    """`core` imports no other room, the read side never imports the Temporal glue, and
    temporalio is imported only by the write side."""
    assert wrong_imports(room_imports()) == {}


def test_negative_control_an_outward_import_is_seen():
    """Negative control: a consumer module importing the worker, or core importing
    temporalio, is reported."""
    found = room_imports()
    found["consumer"] = found.get("consumer", set()) | {"worker"}
    found["core"] = found.get("core", set()) | {"temporalio"}
    assert wrong_imports(found) == {"consumer": {"worker"}, "core": {"temporalio"}}


def opentelemetry_loaded_after(code: str) -> bool:
    """Whether a fresh interpreter holds OpenTelemetry after running `code`."""
    probe = f"{code}\nimport sys\nprint('opentelemetry' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.splitlines()[-1] == "True"


def test_opentelemetry_is_not_loaded_by_the_package():
    """Importing the package, its read side and its write side loads no OpenTelemetry
    (a worker imports it only when it starts with tracing on)."""
    code = "import mistral_workflows, mistral_workflows.consumer\n"
    code += "mistral_workflows.Task, mistral_workflows.MistralWorkflowsPlugin"
    assert not opentelemetry_loaded_after(code)


def test_negative_control_the_check_sees_opentelemetry_from_the_tracing_helpers():
    """Negative control: `mistral_workflows.tracing` loads it, and the check sees it."""
    assert opentelemetry_loaded_after("import mistral_workflows.tracing")


def test_a_missing_extra_is_one_line_naming_it():
    """Without pydantic-ai installed, importing its integration says which extra to install."""
    code = (
        "import sys\nsys.modules['pydantic_ai'] = None\nimport mistral_workflows.agents.pydantic_ai"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        "ImportError: mistral_workflows.agents.pydantic_ai needs pydantic-ai: "
        "pip install 'mistral-workflows[pydantic-ai]'"
    )


def test_a_missing_agents_sdk_is_one_line_naming_its_extra():
    """Without openai-agents installed, importing its integration says which extra to install."""
    code = "import sys\nsys.modules['agents'] = None\nimport mistral_workflows.agents.openai_agents"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "ImportError: mistral_workflows.agents.openai_agents needs openai-agents: "
        "pip install 'mistral-workflows[openai-agents]'"
    )
