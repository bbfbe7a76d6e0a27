"""The examples run end to end (the docs' code is checked by test_doc_snippets.py)."""

from __future__ import annotations

import asyncio

import examples.demo
import examples.follow_progress
import mistral_workflows as workflows
from mistral_workflows.core.events import EventType


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
    assert "All three streams arrived complete." in out


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


async def test_cpu_scoring_streams_progress_from_a_def_activity(
    temporal_address, nats_url, task_queue
):
    """The `def` activity example streams one update per document from its thread, each
    event before the result, and ends with the final state."""
    from examples import cpu_scoring
    from tests.support import rebuilt, task_events

    documents = [f"document {i}" for i in range(5)]
    wid, result = await cpu_scoring.score_with_a_worker(
        temporal_address, nats_url, documents, task_queue
    )
    events = await task_events(nats_url, workflow_exec_id=wid)
    assert result["scored"] == 5 and result["best"] in documents
    assert [e.data.event_type for e in events] == [
        EventType.CUSTOM_TASK_STARTED,
        *[EventType.CUSTOM_TASK_IN_PROGRESS] * 5,
        EventType.CUSTOM_TASK_COMPLETED,
    ]
    (task,) = rebuilt(events)
    assert task.state == {"done": 5, "total": 5, "best": result["best"]}
