"""The state shapes that agent and chat streams publish, for producers and renderers alike.

Two task types:

- `chat_turn` (`ChatTurnState`): one model response as it streams: its text, its thinking,
  the tool calls it asks for (arguments assembled as they arrive), why it stopped, and
  what it cost.
- `working` (`WorkingState`): one tool running, in the shape of Mistral's
  `ChatAssistantWorkingTask` with a `GenericToolUIState` (field names as Mistral's), so
  Mistral's UIs and ours read the same events.

This module imports no framework: a consumer can validate the state it rebuilds with
`ChatTurnState.model_validate(task.state)`.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, Field

from mistral_workflows.conversational._models import (
    WORKING,
    ChatAssistantWorkingTask,
    GenericToolUIState,
    ToolResult,
    ToolResultFailed,
    ToolResultPending,
    ToolResultRunning,
    ToolResultSuccess,
)

__all__ = [
    "CHAT_TURN_TYPE",
    "WORKING_TYPE",
    "ChatTurnState",
    "GenericToolUIState",
    "ToolCallState",
    "ToolResult",
    "ToolResultFailed",
    "ToolResultPending",
    "ToolResultRunning",
    "ToolResultSuccess",
    "Usage",
    "WorkingState",
]

CHAT_TURN_TYPE = "chat_turn"
"""The task type of a model response streamed by this package."""
WORKING_TYPE = WORKING
"""The task type of a tool run (Mistral's working task)."""


class ToolCallState(BaseModel):
    """One tool call of a model response.

    `arguments` is the JSON text exactly as the model streamed it (it is not valid JSON
    until the call is complete); `parsed_arguments()` decodes it.
    """

    index: int
    toolCallId: str | None = None
    name: str = ""
    arguments: str = ""
    result: ToolResult = Field(default_factory=ToolResultPending)

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict ({} when empty; `{"_raw": text}` when not a JSON object)."""
        if not self.arguments:
            return {}
        try:
            value = orjson.loads(self.arguments)
        except orjson.JSONDecodeError:
            return {"_raw": self.arguments}
        return value if isinstance(value, dict) else {"_raw": self.arguments}


class Usage(BaseModel):
    """Token counts, as the provider reports them (None when it does not)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class ChatTurnState(BaseModel):
    """The state of a `chat_turn` task: one model response.

    Fields grow as the response streams: `content` and `thinking` by appended text, each
    entry of `tool_calls` (ordered by the provider's `index`) by its id and name, then by
    appended `arguments` text. `finish_reason` and `usage` are set once, when the provider
    sends them (`usage` may stay None).
    """

    model: str | None = None
    content: str = ""
    thinking: str = ""
    tool_calls: list[ToolCallState] = Field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None

    def to_message(self) -> dict[str, Any]:
        """The response as an OpenAI-style assistant message, to append to the history."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.toolCallId,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in self.tool_calls
            ]
        return message


WorkingState = ChatAssistantWorkingTask
"""The state of a `working` task: Mistral's `ChatAssistantWorkingTask`.

For a tool call (`type` "tool"), `title` is the tool's name, `content` its arguments as
JSON text and `toolUIState` the call and its result. For a model response rejected and
asked again (`type` "retry"), `title` says so and `content` is the feedback sent to the
model; `toolUIState` is None.
"""


def initial_turn(model: str | None = None) -> dict[str, Any]:
    """The state a `chat_turn` task starts with."""
    return ChatTurnState(model=model).model_dump(mode="json")
