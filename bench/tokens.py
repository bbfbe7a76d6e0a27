"""Token streaming cost: per-update producer CPU vs the stream's length, bytes on the wire,
and a whole-state diff (`jsonpatch.make_patch`, what the reference product does) as baseline.

The stream is made as fast as the producer can go (no await between tokens), so the updates
of each event-loop turn share an event, as they do for an LLM client that hands over several
buffered chunks at once. A second run yields after every token (one event per token) to
show the bytes of the other extreme.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import orjson

from bench._common import Row, Servers, direct_emitter
from mistral_workflows.core import subjects
from mistral_workflows.core.emitter import Emitter
from mistral_workflows.core.encoding import event_size
from mistral_workflows.core.task import Task

WINDOW = 100
REPEATS = 3


def token(i: int) -> str:
    return f" tok{i % 1000}"


@dataclass
class Wire:
    """Bytes published (payload and headers), events and snapshots apart."""

    events: int = 0
    snapshots: int = 0
    messages: int = 0
    cpu: dict[int, float] = field(default_factory=dict)


def count_bytes(emitter: Emitter, wire: Wire) -> None:
    publish = emitter._publish
    snapshots = subjects.snapshot_prefix(emitter.publisher.prefix) + "."

    async def counting(entry: Any) -> None:
        size = event_size(entry.payload, entry.headers)
        if entry.subject.startswith(snapshots):
            wire.snapshots += size
        else:
            wire.events += size
            wire.messages += 1
        await publish(entry)

    emitter._publish = counting  # type: ignore[method-assign]


async def stream(url: str, n: int, marks: list[int], paced: bool = False) -> tuple[Wire, Any]:
    """Stream n tokens through a real publisher; CPU per update around each mark."""
    wire = Wire()
    async with direct_emitter(url, f"tokens-{time.time_ns()}") as emitter:
        count_bytes(emitter, wire)
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
                    wire.cpu[i - WINDOW + 1] = spent / WINDOW
                if paced:
                    await asyncio.sleep(0)
    return wire, task.state


def op_floor(final: dict[str, Any]) -> int:
    """The fewest bytes any producer needs with the official op vocabulary for this stream:
    one `add` op per token (a list has no "extend"), the text's appends in one op, and the
    final state in CUSTOM_TASK_COMPLETED; no envelope counted."""
    adds = sum(
        len(orjson.dumps({"op": "add", "path": f"/tokens/{i}", "value": t}))
        for i, t in enumerate(final["tokens"])
    )
    text = len(orjson.dumps({"op": "append", "path": "/text", "value": final["text"]}))
    return adds + text + len(orjson.dumps(final))


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
    # Each figure is the least of a few runs: CPU time is steady, interruptions are not.
    runs = [await stream(servers.nats_url, n, [early, mid, late]) for _ in range(REPEATS)]
    fast, final = runs[0]
    paced, _ = await stream(servers.nats_url, n, [], paced=True)
    size = len(orjson.dumps(final))
    cpu = {mark: min(wire.cpu[mark] for wire, _ in runs) for mark in fast.cpu}
    growth = cpu[late] / cpu[early]
    wire = fast.events / size
    floor = op_floor(final) / size
    baseline = make_patch_cpu(mid)
    speedup = baseline / cpu[mid]
    return [
        Row("tokens", f"producer CPU per update at token {early}", cpu[early] * 1e6, "us"),
        Row("tokens", f"producer CPU per update at token {late}", cpu[late] * 1e6, "us"),
        Row("tokens", f"growth, token {late} / token {early}", growth, "x", "<= 2", growth <= 2),
        Row("tokens", f"events for {n} tokens, made without yielding", fast.messages, "ev"),
        Row(
            "tokens",
            f"event bytes on the wire / final state ({n} tokens)",
            wire,
            "x",
            "<= 3",
            wire <= 3,
        ),
        Row("tokens", "  floor of the official op vocabulary / final state", floor, "x"),
        Row(
            "tokens",
            "  event bytes / that floor",
            wire / floor,
            "x",
            "<= 1.2",
            wire / floor <= 1.2,
        ),
        Row(
            "tokens",
            "  snapshot bytes (for late joiners) / final state",
            fast.snapshots / size,
            "x",
        ),
        Row("tokens", "  event bytes / final state, one event per token", paced.events / size, "x"),
        Row("tokens", f"jsonpatch.make_patch CPU per update at {mid} tokens", baseline * 1e6, "us"),
        Row("tokens", f"make_patch / ours at {mid} tokens", speedup, "x", ">= 100", speedup >= 100),
    ]
