"""Follow a workflow's token stream from the command line, as text.

    python -m examples.follow_tokens --nats-url nats://127.0.0.1:4222 --exec chat-1234

Joins late if the task has already begun (from its latest snapshot) and stops when the
token task ends.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from mistral_workflows import TaskStates, subscribe


async def show_tokens(nats_url: str, workflow_id: str) -> str:
    """Print the tokens of the workflow's token-stream task as they arrive; return the text."""
    states, printed = TaskStates(), 0
    async for event in subscribe(
        nats_url, workflow_exec_id=workflow_id, stream="token-stream", late_join=True
    ):
        task = states.apply(event)
        if task is None:
            continue
        tokens = (task.state or {}).get("tokens", [])
        sys.stdout.write("".join(tokens[printed:]))
        sys.stdout.flush()
        printed = len(tokens)
        if task.status != "running":
            print()
            return "".join(tokens)
    raise RuntimeError("the event stream ended before the task did")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats-url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument("--exec", dest="workflow_id", required=True)
    args = parser.parse_args()
    asyncio.run(show_tokens(args.nats_url, args.workflow_id))


if __name__ == "__main__":
    main()
