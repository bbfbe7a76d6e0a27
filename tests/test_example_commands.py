"""`python -m examples.worker` and `python -m examples.start` as a user runs them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from examples import fake_llm, research, scripted_model
from mistral_workflows.dev import free_port

ROOT = Path(__file__).resolve().parent.parent
# A hang guard for reading the worker's output, not a speed goal.
READY_WITHIN = 60


def environment(nats_url: str, temporal_address: str) -> dict[str, str]:
    return {
        **os.environ,
        "NATS_URL": nats_url,
        "TEMPORAL_ADDRESS": temporal_address,
        "PYTHONPATH": str(ROOT),
    }


async def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run `python -m <args>` from the project root; return its status, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@asynccontextmanager
async def worker(env: dict[str, str], task_queue: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """The example worker, running and ready; stopped with SIGTERM by the caller or at exit."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "examples.worker", "--task-queue", task_queue, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), READY_WITHIN)
        assert b"Worker ready" in line, line
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_worker_serves_started_workflows_and_stops_on_sigterm(
    nats_url, temporal_address, task_queue
):
    """The starter runs chat, progress, research and agent on the worker; SIGTERM stops it
    (exit 0)."""
    env = environment(nats_url, temporal_address)
    async with worker(env, task_queue) as process:
        status, out, err = await run(
            env, "examples.start", "chat", "--follow", "--task-queue", task_queue
        )
        assert status == 0, err
        text = "".join(fake_llm.tokens())
        assert text in out  # streamed from NATS by --follow
        assert json.loads(out.splitlines()[-1]) == {"response": text}

        status, out, err = await run(
            env, "examples.start", "progress", "one two three", "--task-queue", task_queue
        )
        assert status == 0, err
        assert json.loads(out.splitlines()[-1])["token_count"] == 3

        status, out, err = await run(
            env, "examples.start", "research", "--id", "r-cmd", "--task-queue", task_queue
        )
        assert status == 0, err
        assert json.loads(out.splitlines()[-1]) == {"topic": "tides", "done": research.STEPS}

        status, out, err = await run(
            env, "examples.start", "agent", "--follow", "--task-queue", task_queue
        )
        assert status == 0, err
        assert "todo_list 3/3 done" in out  # the checklist, drawn by --follow
        assert json.loads(out.splitlines()[-1]) == scripted_model.ANSWER

        process.send_signal(signal.SIGTERM)
        out, err = await process.communicate()
        assert process.returncode == 0, err
        assert b"Worker stopped." in out


async def test_worker_without_temporal_says_what_to_start(nats_url):
    """A worker pointed at a port where no Temporal listens exits 1 naming the address."""
    address = f"127.0.0.1:{free_port()}"
    status, _, err = await run(environment(nats_url, address), "examples.worker")
    assert status == 1
    assert f"worker: cannot reach Temporal at {address}" in err
    assert "TEMPORAL_ADDRESS" in err


async def test_worker_without_nats_names_the_url(temporal_address):
    """A worker whose NATS_URL has no server exits 1 with the plugin's error naming the URL."""
    url = f"nats://127.0.0.1:{free_port()}"
    status, _, err = await run(environment(url, temporal_address), "examples.worker")
    assert status == 1
    assert url in err
