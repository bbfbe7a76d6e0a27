"""A long-running worker for the example workflows; stops on Ctrl-C or SIGTERM.

    mistral-workflows dev                      # in another terminal: local NATS + Temporal
    python -m examples.worker                  # then start workflows with examples.start

Reads the servers from `NATS_URL` and `TEMPORAL_ADDRESS` (default: the local standard
ports) and serves the chat, progress, research and agent workflows on the `examples` task
queue.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

from temporalio.client import Client
from temporalio.worker import Worker

from examples.agent import AgentWorkflow, model_turn, run_tool
from examples.progress import ProgressWorkflow, streaming_tokens_with_progress_activity
from examples.research import ResearchWorkflow, StepWorkflow, run_step
from examples.token_stream import ChatWorkflow, chat_activity
from mistral_workflows import MistralWorkflowsError, MistralWorkflowsPlugin

TASK_QUEUE = "examples"
WORKFLOWS = [AgentWorkflow, ChatWorkflow, ProgressWorkflow, ResearchWorkflow, StepWorkflow]
ACTIVITIES = [
    chat_activity,
    model_turn,
    run_step,
    run_tool,
    streaming_tokens_with_progress_activity,
]


def servers() -> tuple[str, str]:
    """The NATS URL and Temporal address from the environment, or the local defaults."""
    nats_url = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
    return nats_url, os.environ.get("TEMPORAL_ADDRESS", "127.0.0.1:7233")


async def run_worker(nats_url: str, temporal_address: str, task_queue: str = TASK_QUEUE) -> None:
    """Serve the example workflows until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Where signal handlers cannot be set (Windows), Ctrl-C cancels the worker instead.
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    plugin = MistralWorkflowsPlugin(nats_url=nats_url)
    client = await Client.connect(temporal_address, plugins=[plugin])
    async with Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=ACTIVITIES):
        await asyncio.wait_for(plugin.wait_connected(), 30)  # The worker is starting.
        print(f"Worker ready on task queue {task_queue!r}; Ctrl-C to stop.", flush=True)
        await stop.wait()
        print("Stopping: finishing the running activities...", flush=True)
    print("Worker stopped.", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task-queue", default=TASK_QUEUE, help="Temporal task queue")
    args = parser.parse_args()
    nats_url, temporal_address = servers()
    try:
        asyncio.run(run_worker(nats_url, temporal_address, args.task_queue))
    except MistralWorkflowsError as e:
        sys.exit(f"worker: {e}")
    except RuntimeError as e:
        if "client connect" not in str(e):
            raise
        sys.exit(
            f"worker: cannot reach Temporal at {temporal_address} ({e}); start one with "
            "`mistral-workflows dev` or set TEMPORAL_ADDRESS"
        )


if __name__ == "__main__":
    main()
