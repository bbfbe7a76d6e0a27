"""Scripted model servers for the agent tests: a local HTTP server that streams
chat-completion chunks (SSE) in lock step with the events the worker publishes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import nats

from mistral_workflows.core import subjects
from mistral_workflows.core.events import EventType
from mistral_workflows.core.filter import EventFilter


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, **top: Any
) -> dict[str, Any]:
    """One chat.completion.chunk in the OpenAI wire format."""
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "scripted",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
    }
    body.update(top)
    return body


def usage_chunk(prompt: int, completion: int) -> dict[str, Any]:
    """The last chunk of a stream asked with include_usage: no choices, the usage."""
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    return chunk(choices=[], usage={**usage, "total_tokens": prompt + completion})


def tool_delta(index: int, call_id: str | None = None, name: str | None = None, args: str = ""):
    """A delta carrying a piece of tool call `index`."""
    # Mistral's client wants a name in every piece: later pieces send an empty one.
    call: dict[str, Any] = {"index": index, "function": {"name": "", "arguments": args}}
    if call_id:
        call.update(id=call_id, type="function")
        call["function"]["name"] = name
    return {"tool_calls": [call]}


@dataclass
class ChunkServer:
    """Streams each request's script, one chunk at a time: after a chunk it waits until the
    worker has published one more `chat_turn` event, so no two chunks share an event and the
    states a consumer rebuilds are exactly one per chunk. A script may end with `None`: the
    connection then drops mid-stream (a failed model call)."""

    scripts: list[Sequence[dict[str, Any] | None]]
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    _published: asyncio.Queue[None] = field(default_factory=asyncio.Queue)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        self.requests.append(json.loads(await reader.readexactly(length)))
        script = self.scripts.pop(0)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
        )
        for item in script:
            if item is None:
                writer.write(b'data: {"error": {"message": "model overloaded"}}\n\n')
                await writer.drain()
                writer.close()
                return
            writer.write(b"data: " + json.dumps(item).encode() + b"\n\n")
            await writer.drain()
            await self._published.get()
        writer.write(b"data: [DONE]\n\n")
        await writer.drain()
        writer.close()


@asynccontextmanager
async def chunk_server(
    nats_url: str, workflow_id: str, scripts: list[Sequence[dict[str, Any] | None]]
) -> AsyncIterator[ChunkServer]:
    """A `ChunkServer` on a free loopback port, gated by the `chat_turn` IN_PROGRESS events
    of `workflow_id`."""
    server = ChunkServer(list(scripts))
    nc = await nats.connect(nats_url)
    wanted = EventFilter(workflow_exec_id=workflow_id, stream="chat_turn")
    sub_subject = wanted.subject(subjects.DEFAULT_PREFIX)

    async def on_msg(msg: Any) -> None:
        if json.loads(msg.data)["data"]["event_type"] == EventType.CUSTOM_TASK_IN_PROGRESS:
            server._published.put_nowait(None)

    await nc.subscribe(sub_subject, cb=on_msg)
    await nc.flush()
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        listener.close()
        await nc.close()
