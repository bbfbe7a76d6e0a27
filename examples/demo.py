"""`make demo`: the two reference examples and an agent, end to end, on local servers.

Starts nats-server and a Temporal dev server, runs a worker with the plugin, then runs
the token-streaming workflow while a consumer prints each token as it arrives through
NATS, the progress workflow while a consumer draws a progress bar, and an agent workflow
(a scripted model) while the terminal view shows its todo list, thinking, text and tool
call. The consumers only read the stream; they never talk to the activities.
"""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import Client
from temporalio.worker import Worker

from examples import scripted_model
from examples.agent import AgentWorkflow, model_turn, run_tool
from examples.follow_agent import show_agent
from examples.follow_progress import show_progress
from examples.follow_tokens import show_tokens
from examples.progress import ProgressWorkflow, streaming_tokens_with_progress_activity
from examples.token_stream import ChatWorkflow, chat_activity
from mistral_workflows import MistralWorkflowsPlugin
from mistral_workflows.dev import EmbeddedServers

TASK_QUEUE = "demo"
TEXT = "Stream every step of a long job to a live progress bar"
QUESTION = "What is the weather in Paris?"


async def run_demo(nats_url: str, temporal_address: str) -> None:
    """Run both examples against the given servers, checking what the consumers saw."""
    plugin = MistralWorkflowsPlugin(nats_url=nats_url)
    client = await Client.connect(temporal_address, plugins=[plugin])
    async with Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[ChatWorkflow, ProgressWorkflow, AgentWorkflow],
        activities=[chat_activity, streaming_tokens_with_progress_activity, model_turn, run_tool],
    ):
        await asyncio.wait_for(plugin.wait_connected(), 30)  # The worker is starting.
        chat_id = f"chat-{uuid.uuid4().hex[:8]}"
        print(f"\nToken stream of workflow {chat_id}, read from NATS:\n")
        shown = asyncio.create_task(show_tokens(nats_url, chat_id))
        result = await client.execute_workflow(
            ChatWorkflow.run, "Why stream tokens?", id=chat_id, task_queue=TASK_QUEUE
        )
        if await shown != result["response"]:
            raise SystemExit("demo: the streamed text differs from the activity's result")

        progress_id = f"progress-{uuid.uuid4().hex[:8]}"
        print(f"\nProgress of workflow {progress_id}, read from NATS:\n")
        bar = asyncio.create_task(show_progress(nats_url, progress_id))
        outcome = await client.execute_workflow(
            ProgressWorkflow.run, TEXT, id=progress_id, task_queue=TASK_QUEUE
        )
        if await bar != outcome["token_count"]:
            raise SystemExit("demo: the progress bar did not reach the activity's count")

        agent_id = f"agent-{uuid.uuid4().hex[:8]}"
        print(f"\nAgent workflow {agent_id} (todo list, model turns, a tool), read from NATS:\n")
        shown_agent = asyncio.create_task(show_agent(nats_url, agent_id))
        reply = await client.execute_workflow(
            AgentWorkflow.run, QUESTION, id=agent_id, task_queue=TASK_QUEUE
        )
        await shown_agent
        if reply != scripted_model.ANSWER:
            raise SystemExit("demo: the agent's reply differs from the scripted answer")
    print("\nAll three streams arrived complete.")


def main() -> None:
    print("Starting nats-server and the Temporal dev server...")
    with EmbeddedServers() as servers:
        print(f"NATS      {servers.nats_url}\nTemporal  {servers.temporal_address}")
        asyncio.run(asyncio.wait_for(run_demo(servers.nats_url, servers.temporal_address), 120))


if __name__ == "__main__":
    main()
