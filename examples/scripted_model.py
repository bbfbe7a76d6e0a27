"""A scripted chat model: no network, chunks shaped like an OpenAI-compatible stream.

The first turn thinks, then calls the `get_weather` tool, its arguments arriving in
pieces; once the tool's result is in the messages, the second turn answers in text.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

CITY = "Paris"
ANSWER = f"It is 18 degrees and sunny in {CITY}: a good day for a walk by the Seine."
_THINKING = ["The user asks", " about the weather;", " I should call", " get_weather."]
_ARGUMENTS = ['{"ci', 'ty": "', CITY, '"}']


def _chunk(**delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def _end(reason: str, tokens: int) -> dict[str, Any]:
    usage = {"prompt_tokens": 20, "completion_tokens": tokens, "total_tokens": 20 + tokens}
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}], "usage": usage}


def _tool_call_turn() -> list[dict[str, Any]]:
    chunks = [_chunk(reasoning_content=piece) for piece in _THINKING]
    call = {"index": 0, "id": "call-1", "type": "function"}
    chunks.append(_chunk(tool_calls=[{**call, "function": {"name": "get_weather"}}]))
    for piece in _ARGUMENTS:
        chunks.append(_chunk(tool_calls=[{"index": 0, "function": {"arguments": piece}}]))
    return [*chunks, _end("tool_calls", 12)]


def _answer_turn() -> list[dict[str, Any]]:
    words = ANSWER.split(" ")
    pieces = [words[0]] + [" " + w for w in words[1:]]
    return [*(_chunk(content=piece) for piece in pieces), _end("stop", len(pieces))]


async def stream(
    messages: list[dict[str, Any]], delay: float = 0.03
) -> AsyncIterator[dict[str, Any]]:
    """Yield the next turn's chunks: a tool call, or the answer once a tool has replied."""
    answered = any(m.get("role") == "tool" for m in messages)
    for chunk in _answer_turn() if answered else _tool_call_turn():
        await asyncio.sleep(delay)
        yield chunk


async def get_weather(city: str, delay: float = 0.2) -> dict[str, Any]:
    """The tool: a fixed forecast, after a moment."""
    if not city:
        raise ValueError("get_weather needs a city")
    await asyncio.sleep(delay)
    return {"city": city, "celsius": 18, "sky": "sunny"}
