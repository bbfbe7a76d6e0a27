"""Streaming what LLM apps produce into tasks: chat-completion streams and agent runs.

`import mistral_workflows.agents` loads no framework: the pydantic-ai and OpenAI Agents
integrations live in `mistral_workflows.agents.pydantic_ai` and
`mistral_workflows.agents.openai_agents`, and need their extras.
"""

from __future__ import annotations

from mistral_workflows.agents.chat import ChatTurnBuilder, stream_chat_completion
from mistral_workflows.agents.state import (
    CHAT_TURN_TYPE,
    WORKING_TYPE,
    ChatTurnState,
    GenericToolUIState,
    ToolCallState,
    ToolResult,
    ToolResultFailed,
    ToolResultPending,
    ToolResultRunning,
    ToolResultSuccess,
    Usage,
    WorkingState,
)

__all__ = [
    "CHAT_TURN_TYPE",
    "WORKING_TYPE",
    "ChatTurnBuilder",
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
    "stream_chat_completion",
]
