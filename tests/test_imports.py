"""What importing the package loads: the read side starts without Temporal or the worker."""

from __future__ import annotations

import json
import subprocess
import sys

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
    ],
)
def test_the_read_side_loads_no_temporal_and_no_worker(code):
    """Consumer scripts import neither temporalio nor the worker side of the package."""
    assert loaded_after(code) == []


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
