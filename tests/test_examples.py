"""The examples run end to end, and the docs' code is the examples' code."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import examples.demo
import examples.follow_progress
import mistral_workflows as workflows
from mistral_workflows.core.events import EventType

ROOT = Path(__file__).resolve().parent.parent
CODE_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


async def test_demo_streams_both_examples(temporal_address, nats_url, capsys):
    """The demo prints the token stream and a full progress bar read from NATS."""
    await examples.demo.run_demo(nats_url, temporal_address)
    out = capsys.readouterr().out
    assert "".join(examples.fake_llm.tokens()) in out
    full = "[" + "#" * examples.follow_progress.BAR_WIDTH + "]"
    assert full in out
    frames = [f for f in out.split("\r") if f.startswith("[")]
    assert len(frames) == len(set(frames)), "a progress frame was drawn twice"
    assert out.count(full) == 1, "the last progress frame was drawn twice"
    assert "Both streams arrived complete." in out


def lines(text: str) -> str:
    """Non-blank lines without their indentation, so a snippet may be dedented."""
    return "\n".join(line.strip() for line in text.splitlines() if line.strip()) + "\n"


def test_every_doc_snippet_is_tested_example_code():
    """Each python block of README.md and docs/ is code of a tested example, line for line."""
    sources = [lines(p.read_text()) for p in (ROOT / "examples").glob("*.py")]
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    blocks = [b for doc in docs for b in CODE_BLOCK.findall(doc.read_text())]
    assert len(blocks) >= 3, "the docs show no code"
    for block in blocks:
        assert any(lines(block) in s for s in sources), f"not in examples/:\n{block}"


def test_snippet_check_catches_drift():
    """Negative control: a snippet edited away from the example is not found."""
    source = lines((ROOT / "examples" / "token_stream.py").read_text())
    assert lines('async with Task(type="token-stream", state=initial_state) as task:') in source
    assert lines('async with Task(type="token_stream", state=initial_state) as task:') not in source


def test_activity_decorator_forms():
    """@activity, @activity() and @activity(name=...) register Temporal activities."""
    from temporalio.activity import _Definition

    @workflows.activity
    async def bare() -> None: ...

    @workflows.activity()
    async def called() -> None: ...

    @workflows.activity(name="Readable name")
    async def named() -> None: ...

    names = [_Definition.must_from_callable(f).name for f in (bare, called, named)]
    assert names == ["bare", "called", "Readable name"]


async def test_research_tree_followed_by_its_root(temporal_address, nats_url, task_queue):
    """The research example's whole tree is followed by the root id until the root ends."""
    from examples import research
    from tests.support import plugged_client, rebuilt, running_worker, unique

    client = await plugged_client(temporal_address, nats_url)
    root = unique("research")
    follower = asyncio.create_task(research.follow_tree(nats_url, root))
    async with running_worker(
        client,
        task_queue,
        [research.ResearchWorkflow, research.StepWorkflow],
        [research.run_step],
    ):
        result = await client.execute_workflow(
            research.ResearchWorkflow.run, "tides", id=root, task_queue=task_queue
        )
    events = await asyncio.wait_for(follower, 20)
    assert result == {"topic": "tides", "done": research.STEPS}
    assert events[-1].data.event_type == EventType.WORKFLOW_EXECUTION_COMPLETED
    assert {e.data.workflow_exec_id for e in events} == {root} | {
        f"{root}-{step}" for step in research.STEPS
    }
    plan = next(t for t in rebuilt(events) if t.task_type == "plan")
    assert plan.state == result
