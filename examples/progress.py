"""Progress updates: an activity reports how far it got through a list of words."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import mistral_workflows as workflows
    from mistral_workflows.core.task import Task

STEP_DELAY = 0.1


@workflows.activity(name="Processing text with explicit control")
async def streaming_tokens_with_progress_activity(text: str) -> dict[str, Any]:
    words = text.split()
    initial_state = {"processed_words": [], "progress_idx": 0, "progress_total": len(words)}

    async with Task(type="progress-stream", state=initial_state) as task:
        state = task.state
        for i, word in enumerate(words):
            await task.update_state(
                {"processed_words": state["processed_words"] + [word], "progress_idx": i + 1}
            )
            state = task.state
            await asyncio.sleep(STEP_DELAY)

    final_state = task.state
    return {"processed_text": " ".join(final_state["processed_words"]), "token_count": len(words)}


@workflow.defn
class ProgressWorkflow:
    @workflow.run
    async def run(self, text: str) -> dict[str, Any]:
        return await workflow.execute_activity(
            streaming_tokens_with_progress_activity,
            text,
            start_to_close_timeout=timedelta(minutes=1),
        )
