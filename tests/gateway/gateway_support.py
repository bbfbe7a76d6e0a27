"""Helpers of the gateway tests: a real gateway process, a worker, and SSE readers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import IO, Any

import httpx2 as httpx
import orjson
from mistralai.client import Mistral

from examples import token_stream
from mistral_workflows.core import subjects
from mistral_workflows.core.envelope import envelope
from mistral_workflows.core.events import EventType
from mistral_workflows.dev import free_port
from tests.support import plugged_client, running_worker, unique

SECRET = "test-secret-" + "x" * 40
IDLE = 1.0


@dataclass
class Gateway:
    """A running `mistral-workflows gateway` process."""

    url: str
    process: subprocess.Popen[bytes]
    log: IO[bytes] | None = None
    """The file receiving the process's stderr (its log), while it runs."""

    @contextlib.asynccontextmanager
    async def client(self, token: str = "any") -> AsyncIterator[Mistral]:
        """The official client, pointed at this gateway. It gets an HTTP client of ours,
        closed here: the SDK's own would be closed by a finalizer whenever the garbage
        collector runs, which may be when no event loop can run the close any more."""
        async with httpx.AsyncClient(follow_redirects=True) as http:
            yield Mistral(api_key=token, server_url=self.url, async_client=http)


@contextlib.contextmanager
def gateway_process(
    nats_url: str, secret: str | None = None, *flags: str, port: int | None = None
) -> Iterator[Gateway]:
    """Start the gateway command on a loopback port (default: a free one); stop it by its
    process id."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if k != "MISTRAL_WORKFLOWS_GATEWAY_SECRET"}
    if secret is not None:
        env["MISTRAL_WORKFLOWS_GATEWAY_SECRET"] = secret
    command = [sys.executable, "-m", "mistral_workflows", "gateway", "--nats-url", nats_url]
    command += ["--host", "127.0.0.1", "--port", str(port), *flags]
    # A file, not a pipe: a pipe nobody reads would block the gateway once full.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, env=env, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, process, log)
            yield Gateway(url, process, log)
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"the gateway exited: {log.read().decode()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("the gateway did not start within 30 s")


@contextlib.asynccontextmanager
async def chat_worker(temporal_address: str, nats_url: str, task_queue: str) -> AsyncIterator[Any]:
    """A plugged worker running the token-stream example; yields its client."""
    client = await plugged_client(temporal_address, nats_url)
    async with running_worker(
        client, task_queue, [token_stream.ChatWorkflow], [token_stream.chat_activity]
    ):
        yield client


async def start_chat(client: Any, task_queue: str, workflow_id: str) -> Any:
    """Start the token-stream example workflow; return its handle."""
    return await client.start_workflow(
        token_stream.ChatWorkflow.run, "hello?", id=workflow_id, task_queue=task_queue
    )


async def read_until(stream: Any, done: Any = None, idle: float = IDLE) -> list[Any]:
    """Messages of an official-client stream until `done(message)` is true, or until
    `idle` seconds pass without one; the stream is closed at the end."""
    out: list[Any] = []
    iterator = stream.__aiter__()
    try:
        while True:
            try:
                message = await asyncio.wait_for(iterator.__anext__(), idle)
            except (TimeoutError, StopAsyncIteration):
                return out
            out.append(message)
            if done is not None and done(message):
                return out
    finally:
        await stream.close()


def completed(workflow_id: str) -> Any:
    """A `done` predicate: the workflow's completion event."""

    def done(message: Any) -> bool:
        data = message.data
        return (
            getattr(data, "data", None) is not None
            and data.data.event_type == EventType.WORKFLOW_EXECUTION_COMPLETED
            and data.data.workflow_exec_id == workflow_id
        )

    return done


def event_fields(blocks: list[str], field: str) -> list[str]:
    """The value of `field` (`id`, `data`) in each event block of a raw SSE stream."""
    return [
        line[len(field) + 2 :]
        for block in blocks
        if "event: workflow.event" in block
        for line in block.splitlines()
        if line.startswith(f"{field}: ")
    ]


def ids_of(blocks: list[str]) -> list[int]:
    """The `id:` of each event block of a raw SSE stream."""
    return [int(value) for value in event_fields(blocks, "id")]


def envelopes(blocks: list[str]) -> list[dict[str, Any]]:
    """The `data:` of each event block of a raw SSE stream."""
    return [orjson.loads(value) for value in event_fields(blocks, "data")]


def sequences(messages: list[Any]) -> list[int]:
    """The broker sequences of the event messages."""
    return [m.data.broker_sequence for m in messages if m.event == "workflow.event"]


async def raw_sse(url: str, params: Any, headers: Any = None, idle: float = IDLE) -> list[str]:
    """The raw SSE blocks of a stream, read until `idle` seconds pass without an event
    (keep-alive comments do not count)."""
    blocks: list[str] = []
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream("GET", url, params=params, headers=headers) as response,
    ):
        assert response.status_code == 200, response.status_code
        buffer = ""
        chunks = response.aiter_text().__aiter__()
        deadline = time.monotonic() + idle
        while (left := deadline - time.monotonic()) > 0:
            try:
                buffer += await asyncio.wait_for(chunks.__anext__(), left)
            except (TimeoutError, StopAsyncIteration):
                break
            *done, buffer = buffer.split("\n\n")
            blocks += done
            if any(not block.startswith(":") for block in done):
                deadline = time.monotonic() + idle
    return blocks


def foreign_event(
    workflow_id: str, workflow_name: str, metadata: dict[str, object]
) -> tuple[str, bytes]:
    """The subject and body of a STARTED event as another producer could publish it
    straight to NATS, carrying `metadata`."""
    origin = {
        "workflow_name": workflow_name,
        "workflow_exec_id": workflow_id,
        "root_workflow_exec_id": workflow_id,
        "parent_workflow_exec_id": None,
        "workflow_run_id": "run",
    }
    body = envelope(
        stream="notes",
        event_type=EventType.CUSTOM_TASK_STARTED,
        event_id=unique("id"),
        attributes={"custom_task_id": "t", "custom_task_type": "notes"},
        origin=origin,
        workflow_context={"namespace": "default", **origin},
        activity_context=None,
    )
    body["metadata"] = metadata
    subject = subjects.event_subject(
        subjects.DEFAULT_PREFIX,
        namespace="default",
        stream="notes",
        workflow_name=workflow_name,
        root_exec_id=workflow_id,
        parent_exec_id=None,
        exec_id=workflow_id,
    )
    return subject, orjson.dumps(body)
