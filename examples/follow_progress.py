"""Follow a workflow's progress task from the command line, as a progress bar.

python -m examples.follow_progress --nats-url nats://127.0.0.1:4222 --exec progress-1234
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from mistral_workflows import TaskStates, subscribe

BAR_WIDTH = 30


async def show_progress(nats_url: str, workflow_id: str) -> int:
    """Draw a progress bar from the workflow's progress-stream task; return the final count."""
    states, shown = TaskStates(), ""
    async for event in subscribe(
        nats_url, workflow_exec_id=workflow_id, stream="progress-stream", late_join=True
    ):
        task = states.apply(event)
        if task is None:
            continue
        done, total = task.state["progress_idx"], task.state["progress_total"]
        filled = BAR_WIDTH * done // max(total, 1)
        frame = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} words"
        if frame != shown:  # the end event repeats the last state: draw each frame once
            sys.stdout.write(f"\r{frame}")
            sys.stdout.flush()
            shown = frame
        if task.status != "running":
            print()
            return int(done)
    raise RuntimeError("the event stream ended before the task did")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats-url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument("--exec", dest="workflow_id", required=True)
    args = parser.parse_args()
    asyncio.run(show_progress(args.nats_url, args.workflow_id))


if __name__ == "__main__":
    main()
