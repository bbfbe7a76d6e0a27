"""An agent workflow: a todo list in workflow code, whose steps run the model turns and
the tool of `examples/agent_activities.py`.

The model is scripted (`examples/scripted_model.py`), so it runs without network.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from examples.agent_activities import model_turn, run_tool
    from mistral_workflows.conversational import TodoList, TodoListItem

_TIMEOUT = timedelta(seconds=60)


@workflow.defn
class AgentWorkflow:
    @workflow.run
    async def run(self, question: str) -> str:
        messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
        think = TodoListItem(title="Decide what to look up", description="First model turn")
        look_up = TodoListItem(title="Look up the weather", description="Run the tool")
        answer = TodoListItem(title="Answer", description="Second model turn")

        async with TodoList(items=[think, look_up, answer]):
            async with think:
                turn = await workflow.execute_activity(
                    model_turn, messages, start_to_close_timeout=_TIMEOUT
                )
            async with look_up:
                call = turn["tool_calls"][0]
                value = await workflow.execute_activity(
                    run_tool, call, start_to_close_timeout=_TIMEOUT
                )
                messages.append(
                    {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(value)}
                )
            async with answer:
                reply = await workflow.execute_activity(
                    model_turn, messages, start_to_close_timeout=_TIMEOUT
                )

        return str(reply["content"])
