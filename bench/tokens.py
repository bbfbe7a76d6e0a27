"""Token streaming cost: per-update producer CPU vs the stream's length, bytes on the wire,
and a whole-state diff (`jsonpatch.make_patch`, what the reference product does) as baseline."""

from __future__ import annotations

import time
from typing import Any

import jsonpatch
import nats
import orjson

from bench._common import Row, Servers
from mistral_workflows.core.context import ActivityRef, ExecutionContext, Scope, use_scope
from mistral_workflows.core.publisher import Publisher
from mistral_workflows.core.task import Task
from mistral_workflows.worker import StreamSettings, provision

WINDOW = 100


def token(i: int) -> str:
    return f" tok{i % 1000}"


async def stream(url: str, n: int, marks: list[int]) -> tuple[dict[str, float], int, Any]:
    """Stream n tokens through a real publisher; CPU per update around each mark, bytes sent."""
    nc = await nats.connect(url)
    await provision(nc.jetstream(), StreamSettings())
    publisher = Publisher(
        nc, stream_name="WORKFLOW_EVENTS", prefix="workflows", max_event_bytes=1 << 20
    )
    context = ExecutionContext("default", "Bench", "tokens", "run", "tokens", None)
    ref = ActivityRef("1", "bench", 1)
    emitter = publisher.emitter(context, ref)
    sent = 0
    original = emitter.send

    async def counting(
        subject: str, payload: bytes, headers: dict[str, str], then: Any = None
    ) -> None:
        nonlocal sent
        sent += len(payload)
        await original(subject, payload, headers, then)

    emitter.send = counting  # type: ignore[method-assign]
    use_scope(Scope(context, ref, emitter))
    cpu: dict[str, float] = {}
    async with Task(type="token-stream", state={"tokens": [], "text": ""}) as task:
        for i in range(n):
            if i in marks:
                started = time.process_time()
            t = token(i)
            await task.update_state(
                {"tokens": task.state["tokens"] + [t], "text": task.state["text"] + t}
            )
            if i - WINDOW in marks:
                cpu[str(i - WINDOW)] = (time.process_time() - started) / WINDOW
    await emitter.flush()
    await nc.close()
    return cpu, sent, task.state


def make_patch_cpu(at: int) -> float:
    """CPU per update of jsonpatch.make_patch on the same state, around `at` tokens."""
    tokens = [token(i) for i in range(at)]
    state = {"tokens": tokens, "text": "".join(tokens)}
    started = time.process_time()
    for i in range(at, at + WINDOW // 10):
        t = token(i)
        new = {"tokens": state["tokens"] + [t], "text": state["text"] + t}
        jsonpatch.make_patch(state, new)
        state = new
    return (time.process_time() - started) / (WINDOW // 10)


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
