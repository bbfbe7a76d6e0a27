"""Start one of the example workflows on the worker of `examples.worker`.

    python -m examples.start chat "Why stream tokens?" --follow
    python -m examples.start progress --id progress-1 --no-wait
    python -m examples.start research tides --follow
    python -m examples.start agent --follow

Prints the workflow id, then (unless --no-wait) waits for the result and prints it as
JSON. With --follow it prints the workflow's events as they arrive, read from NATS.
Reads the servers from `NATS_URL` and `TEMPORAL_ADDRESS`, like the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import Client

from examples.agent import AgentWorkflow
from examples.follow_agent import show_agent
from examples.follow_progress import show_progress
from examples.follow_tokens import show_tokens
from examples.progress import ProgressWorkflow
from examples.research import ResearchWorkflow, follow_tree
from examples.token_stream import ChatWorkflow
from examples.worker import TASK_QUEUE, servers

# name: (workflow run method, default argument, follower of one execution's events)
WORKFLOWS: dict[str, tuple[Any, str, Callable[[str, str], Awaitable[Any]]]] = {
    "agent": (AgentWorkflow.run, "What is the weather in Paris?", show_agent),
    "chat": (ChatWorkflow.run, "Why stream tokens?", show_tokens),
    "progress": (ProgressWorkflow.run, "Stream every step to a progress bar", show_progress),
    "research": (ResearchWorkflow.run, "tides", follow_tree),
}


async def connect(temporal_address: str) -> Client:
    """A Temporal client, or an exit with a message saying what to start."""
    try:
        return await Client.connect(temporal_address)
    except RuntimeError as e:
        raise SystemExit(
            f"start: cannot reach Temporal at {temporal_address} ({e}); start one with "
            "`mistral-workflows dev` or set TEMPORAL_ADDRESS"
        ) from None


async def start(
    name: str,
    argument: str | None = None,
    workflow_id: str | None = None,
    wait: bool = True,
    follow: bool = False,
    task_queue: str = TASK_QUEUE,
) -> Any:
    """Start workflow `name`; return its result, or None when not waiting for it."""
    run, default, follower = WORKFLOWS[name]
    nats_url, temporal_address = servers()
    client = await connect(temporal_address)
    workflow_id = workflow_id or f"{name}-{uuid.uuid4().hex[:8]}"
    following = asyncio.create_task(follower(nats_url, workflow_id)) if follow else None
    handle = await client.start_workflow(
        run, argument or default, id=workflow_id, task_queue=task_queue
    )
    print(f"Started workflow {workflow_id}", flush=True)
    if following is not None:
        await following
    if not wait:
        return None
    result = await handle.result()
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workflow", choices=sorted(WORKFLOWS), help="which example to run")
    parser.add_argument("argument", nargs="?", help="its input (default: an example input)")
    parser.add_argument("--id", dest="workflow_id", help="workflow id (default: a new one)")
    parser.add_argument("--no-wait", dest="wait", action="store_false", help="do not wait")
    parser.add_argument("--follow", action="store_true", help="print its events from NATS")
    parser.add_argument("--task-queue", default=TASK_QUEUE, help="the worker's task queue")
    args = parser.parse_args()
    asyncio.run(
        start(
            args.workflow, args.argument, args.workflow_id, args.wait, args.follow, args.task_queue
        )
    )
    # The Temporal client's native threads can abort a short-lived process while the
    # interpreter finalizes ("PyGILState_Release ... must be current"): once the output is
    # out, leave without finalizing.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
