"""A workflow tree with a workflow-level task: a plan that spans several activities.

`ResearchWorkflow` keeps a "plan" task in workflow code and updates it as each step
finishes; every step runs in a child workflow. A consumer follows the whole tree by the
root's id and stops when the root ends.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import mistral_workflows as workflows
    from mistral_workflows import StreamEvent, TaskStates, subscribe
    from mistral_workflows.core.task import Task

STEPS = ["search", "read", "summarise"]


@workflows.activity()
async def run_step(step: str) -> str:
    async with Task(type="step-log", state={"lines": []}) as log:
        await log.update_state({"lines": [f"{step}: started"]})
        await log.update_state({"lines": [*log.state["lines"], f"{step}: done"]})
    return f"{step} ok"


@workflow.defn
class StepWorkflow:
    @workflow.run
    async def run(self, step: str) -> str:
        return await workflow.execute_activity(
            run_step, step, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn
class ResearchWorkflow:
    @workflow.run
    async def run(self, topic: str) -> dict[str, Any]:
        async with Task(type="plan", state={"topic": topic, "done": []}) as plan:
            for step in STEPS:
                await workflow.execute_child_workflow(
                    StepWorkflow.run, step, id=f"{workflow.info().workflow_id}-{step}"
                )
                await plan.update_state({"done": [*plan.state["done"], step]})
        return plan.state


async def follow_tree(nats_url: str, root_id: str) -> list[StreamEvent]:
    """Print one line per event of the whole tree until the root workflow ends."""
    states, seen = TaskStates(), []
    async for event in subscribe(nats_url, root_workflow_exec_id=root_id, until_complete=True):
        seen.append(event)
        task = states.apply(event)
        where = event.data.workflow_exec_id.removeprefix(root_id) or "(root)"
        detail = f" {task.task_type}: {task.state}" if task else ""
        print(f"{event.broker_sequence:>6} {where:<12} {event.data.event_type}{detail}")
    return seen


def main() -> None:
    """Follow a research tree from the command line until its root ends."""
    import argparse
    import asyncio
    import os

    parser = argparse.ArgumentParser(description="Follow a workflow tree by its root id.")
    parser.add_argument("--nats-url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument("--root", required=True)
    args = parser.parse_args()
    asyncio.run(follow_tree(args.nats_url, args.root))


if __name__ == "__main__":
    main()
