"""Token streaming cost: per-update producer CPU vs the stream's length, bytes on the wire,
and a whole-state diff (`jsonpatch.make_patch`, what the reference product does) as baseline."""

from __future__ import annotations

import time
from typing import Any

import jsonpatch
import orjson

from bench._common import Row, Servers, direct_emitter
from mistral_workflows.core.publisher import Emitter
from mistral_workflows.core.task import Task

WINDOW = 100


def token(i: int) -> str:
    return f" tok{i % 1000}"


async def stream(url: str, n: int, marks: list[int]) -> tuple[dict[str, float], int, Any]:
    """Stream n tokens through a real publisher; CPU per update around each mark, bytes sent."""
    async with direct_emitter(url, "tokens") as emitter:
        return await _stream(emitter, n, marks)


async def _stream(emitter: Emitter, n: int, marks: list[int]) -> tuple[dict[str, float], int, Any]:
    sent = 0
    original = emitter.send

    async def counting(
        subject: str, payload: bytes, headers: dict[str, str], then: Any = None
    ) -> None:
        nonlocal sent
        sent += len(payload)
        await original(subject, payload, headers, then)

    emitter.send = counting  # type: ignore[method-assign]
    cpu: dict[str, float] = {}
    spent = 0.0
    async with Task(type="token-stream", state={"tokens": [], "text": ""}) as task:
        for i in range(n):
            if i in marks:
                spent = 0.0
            t = token(i)
            # The caller builds the new values (its own O(n) list copy, as in the
            # reference doc); only the library's work is timed.
            update = {"tokens": task.state["tokens"] + [t], "text": task.state["text"] + t}
            started = time.thread_time()
            await task.update_state(update)
            spent += time.thread_time() - started
            if i - WINDOW + 1 in marks:
                cpu[str(i - WINDOW + 1)] = spent / WINDOW
    await emitter.flush()
    return cpu, sent, task.state


def make_patch_cpu(at: int) -> float:
    """CPU per update of jsonpatch.make_patch on the same state, around `at` tokens."""
    tokens = [token(i) for i in range(at)]
    state = {"tokens": tokens, "text": "".join(tokens)}
    started = time.thread_time()
    for i in range(at, at + WINDOW // 10):
        t = token(i)
        new = {"tokens": state["tokens"] + [t], "text": state["text"] + t}
        jsonpatch.make_patch(state, new)
        state = new
    return (time.thread_time() - started) / (WINDOW // 10)


async def run(servers: Servers, n: int) -> list[Row]:
    early, late, mid = 100, n - WINDOW - 1, min(4000, n - WINDOW - 1)
    cpu, sent, final = await stream(servers.nats_url, n, [early, mid, late])
    growth = cpu[str(late)] / cpu[str(early)]
    wire = sent / len(orjson.dumps(final))
    baseline = make_patch_cpu(mid)
    speedup = baseline / cpu[str(mid)]
    return [
        Row("tokens", f"producer CPU per update at token {early}", cpu[str(early)] * 1e6, "us"),
        Row("tokens", f"producer CPU per update at token {late}", cpu[str(late)] * 1e6, "us"),
        Row("tokens", f"growth, token {late} / token {early}", growth, "x", "<= 2", growth <= 2),
        Row(
            "tokens", f"bytes on the wire / final state ({n} tokens)", wire, "x", "<= 3", wire <= 3
        ),
        Row("tokens", f"jsonpatch.make_patch CPU per update at {mid} tokens", baseline * 1e6, "us"),
        Row("tokens", f"make_patch / ours at {mid} tokens", speedup, "x", ">= 100", speedup >= 100),
    ]
