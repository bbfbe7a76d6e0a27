"""Token streaming: an activity streams an LLM's reply token by token.

The activity is the reference pattern with the package renamed; the workflow calls it.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import mistral_workflows as workflows
    from examples import fake_llm as llm
    from mistral_workflows.core.task import Task


@workflows.activity()
async def chat_activity(messages: list[dict[str, str]]) -> dict[str, str]:
    initial_state: dict[str, list[str]] = {"tokens": []}

    async with Task(type="token-stream", state=initial_state) as task:
        async for chunk in llm.stream(messages):
            token = chunk.choices[0].delta.content
            if token:
                await task.update_state({"tokens": task.state["tokens"] + [token]})

    return {"response": "".join(task.state["tokens"])}


@workflow.defn
class ChatWorkflow:
    @workflow.run
    async def run(self, question: str) -> dict[str, str]:
        return await workflow.execute_activity(
            chat_activity,
            [{"role": "user", "content": question}],
            start_to_close_timeout=timedelta(minutes=1),
        )
