"""The agent's activities: a model turn streamed as an `assistant` task (thinking, text,
tool calls whose arguments stream in pieces, finish reason, usage) and a tool run as a
`working` task with its tool UI state (pending, running, then success or failed).

The model is scripted (`examples/scripted_model.py`), so it runs without network.
"""

from __future__ import annotations

import json
from typing import Any

import mistral_workflows as workflows
from examples import scripted_model as model
from mistral_workflows.conversational import (
    ChatAssistantWorkingTask,
    GenericToolUIState,
    ToolResultFailed,
    ToolResultPending,
    ToolResultRunning,
    ToolResultSuccess,
)
from mistral_workflows.core.task import Task


def merge_delta(state: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """The state's keys that `delta` changes (a tool call's pieces join its arguments)."""
    changes: dict[str, Any] = {}
    for key, source in (("content", "content"), ("reasoning", "reasoning_content")):
        if delta.get(source):
            changes[key] = state[key] + delta[source]
    if delta.get("tool_calls"):
        calls = [dict(call) for call in state["tool_calls"]]
        for piece in delta["tool_calls"]:
            if piece["index"] == len(calls):
                calls.append({"id": piece["id"], "name": "", "arguments": ""})
            function = piece.get("function", {})
            calls[piece["index"]]["name"] += function.get("name", "")
            calls[piece["index"]]["arguments"] += function.get("arguments", "")
        changes["tool_calls"] = calls
    return changes


@workflows.activity()
async def model_turn(messages: list[dict[str, Any]]) -> dict[str, Any]:
    initial_state: dict[str, Any] = {
        "content": "",
        "reasoning": "",
        "tool_calls": [],
        "finish_reason": None,
        "usage": None,
    }

    async with Task(type="assistant", state=initial_state) as turn:
        async for chunk in model.stream(messages):
            choice = chunk["choices"][0]
            await turn.update_state(merge_delta(turn.state, choice["delta"]))
            if choice["finish_reason"]:
                await turn.update_state(
                    {"finish_reason": choice["finish_reason"], "usage": chunk.get("usage")}
                )

    return dict(turn.state)


@workflows.activity()
async def run_tool(call: dict[str, Any]) -> dict[str, Any]:
    arguments = json.loads(call["arguments"])
    tool = GenericToolUIState(
        toolCallId=call["id"], name=call["name"], arguments=arguments, result=ToolResultPending()
    )
    working = ChatAssistantWorkingTask(
        title=f"Calling {call['name']}", content=json.dumps(arguments), toolUIState=tool
    )

    async with Task(type="working", state=working) as task:
        await task.update_state(
            {"toolUIState": tool.model_copy(update={"result": ToolResultRunning()})}
        )
        try:
            value = await model.get_weather(**arguments)
        except Exception as e:
            failed = tool.model_copy(update={"result": ToolResultFailed(error=str(e))})
            await task.update_state({"toolUIState": failed})
            raise
        done = tool.model_copy(update={"result": ToolResultSuccess(value=value)})
        await task.update_state({"toolUIState": done})

    return value
