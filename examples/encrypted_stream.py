"""Encrypted task state: an activity streams an API key that only key holders can read.

    STATE_KEY=$(openssl rand -hex 32) python -m examples.encrypted_stream

Starts local servers, runs a worker whose plugin encrypts the `api_key` field of task
state before it leaves the worker, then reads the task back with the same key. The other
fields, and every event's ids, types and sequence numbers, stay readable.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    import mistral_workflows as workflows
    from mistral_workflows import MistralWorkflowsPlugin, TaskStates, subscribe
    from mistral_workflows.core.task import Task
    from mistral_workflows.dev import EmbeddedServers

TASK_QUEUE = "encrypted-stream"
KEY_PARTS = ("sk-", "live-", "4f9c2e")


@workflows.activity()
async def issue_api_key(user: str) -> str:
    state = {"user": user, "status": "issuing", "api_key": ""}
    async with Task(type="credentials", state=state) as task:
        for part in KEY_PARTS:  # e.g. a key read from a vault in pieces
            await task.update_state({"api_key": task.state["api_key"] + part})
        await task.update_state({"status": "issued"})
    return "issued"  # results go to Temporal's history: keep secrets out of them


@workflow.defn
class IssueKeyWorkflow:
    @workflow.run
    async def run(self, user: str) -> str:
        return await workflow.execute_activity(
            issue_api_key, user, start_to_close_timeout=timedelta(minutes=1)
        )


def state_encryption(key_hex: str) -> workflows.Encryption:
    # The same keys on both sides; "k1" names the key, so that a new one can take over.
    key = bytes.fromhex(key_hex)
    return workflows.Encryption(keys={"k1": key}, active="k1", fields={"api_key"})


async def issue_and_read(
    nats_url: str, temporal_address: str, key_hex: str, task_queue: str = TASK_QUEUE
) -> tuple[str, dict[str, Any]]:
    """Run the workflow with an encrypting worker; return its id and the decrypted state."""
    encryption = state_encryption(key_hex)
    plugin = MistralWorkflowsPlugin(nats_url=nats_url, encryption=encryption)
    client = await Client.connect(temporal_address, plugins=[plugin])
    workflow_id = f"issue-key-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client, task_queue=task_queue, workflows=[IssueKeyWorkflow], activities=[issue_api_key]
    ):
        await client.execute_workflow(
            IssueKeyWorkflow.run, "ada", id=workflow_id, task_queue=task_queue
        )

    states = TaskStates()
    async for event in subscribe(
        nats_url, workflow_exec_id=workflow_id, idle_timeout=1, encryption=encryption
    ):
        states.apply(event)  # already decrypted by subscribe
    (task,) = states
    return workflow_id, task.state


def main() -> None:
    key_hex = os.environ.get("STATE_KEY") or os.urandom(32).hex()
    with EmbeddedServers() as servers:
        coro = issue_and_read(servers.nats_url, servers.temporal_address, key_hex)
        workflow_id, state = asyncio.run(asyncio.wait_for(coro, 120))
    print(f"{workflow_id}: {state}")


if __name__ == "__main__":
    main()
