"""A deterministic stand-in for a streaming LLM client: no network, same chunk shape.

`stream(messages)` yields chunks like OpenAI-style clients do
(`chunk.choices[0].delta.content`), one word-piece at a time, with a small delay.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

REPLY = (
    "Temporal keeps the workflow durable, NATS JetStream carries every token to the "
    "screen in milliseconds, and nothing is lost on the way."
)


@dataclass
class Delta:
    content: str | None


@dataclass
class Choice:
    delta: Delta


@dataclass
class Chunk:
    choices: list[Choice]


def tokens(text: str = REPLY) -> list[str]:
    """Split `text` into word-pieces that keep their leading space, like LLM tokens."""
    words = text.split(" ")
    return [words[0]] + [" " + w for w in words[1:]]


async def stream(messages: list[dict[str, str]], delay: float = 0.03) -> AsyncIterator[Chunk]:
    """Yield the reply to `messages` token by token (the reply is always the same)."""
    for token in tokens():
        await asyncio.sleep(delay)
        yield Chunk([Choice(Delta(token))])
    yield Chunk([Choice(Delta(None))])  # Real streams end with an empty delta.
