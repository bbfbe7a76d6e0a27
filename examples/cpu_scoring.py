"""CPU-bound work in a `def` activity: Temporal runs it in a thread pool, so the worker's
event loop stays free, and its `Task` streams progress through that loop.

    python -m examples.cpu_scoring   (with the dev servers of `mistral-workflows dev`)
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import mistral_workflows as workflows
    from mistral_workflows.core.task import Task

ROUNDS = 20_000


def score(document: str) -> int:
    """Stand-in for CPU-bound work: parsing a page, scoring a document, a blocking SDK."""
    digest = document.encode()
    for _ in range(ROUNDS):
        digest = hashlib.sha256(digest).digest()
    return digest[0]


@workflows.activity(name="Scoring documents")
def score_documents(documents: list[str]) -> dict[str, Any]:
    best, best_score = None, -1
    initial_state = {"done": 0, "total": len(documents), "best": None}

    with Task(type="scoring", state=initial_state) as task:
        for i, document in enumerate(documents):
            points = score(document)
            if points > best_score:
                best, best_score = document, points
            task.update_state({"done": i + 1, "best": best})

    return {"best": best, "scored": len(documents)}


@workflow.defn
class ScoringWorkflow:
    @workflow.run
    async def run(self, documents: list[str]) -> dict[str, Any]:
        return await workflow.execute_activity(
            score_documents, documents, start_to_close_timeout=timedelta(minutes=5)
        )


async def score_with_a_worker(
    temporal_address: str, nats_url: str, documents: list[str], task_queue: str = "scoring"
) -> tuple[str, dict[str, Any]]:
    """Run the workflow on a plugged worker; return its id and result."""
    from temporalio.client import Client
    from temporalio.worker import Worker

    plugin = workflows.MistralWorkflowsPlugin(nats_url=nats_url)
    client = await Client.connect(temporal_address, plugins=[plugin])
    # The plugin gives a worker with `def` activities a thread pool to run them in
    # (pass activity_executor=... to Worker to choose your own).
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ScoringWorkflow],
        activities=[score_documents],
    ):
        workflow_id = f"scoring-{uuid.uuid4().hex[:8]}"
        result = await client.execute_workflow(
            ScoringWorkflow.run, documents, id=workflow_id, task_queue=task_queue
        )
    return workflow_id, result


if __name__ == "__main__":
    documents = [f"document {i}" for i in range(20)]
    print(asyncio.run(score_with_a_worker("127.0.0.1:7233", "nats://127.0.0.1:4222", documents)))
