"""Follow an agent workflow in the terminal: its todo list as a checklist, each model
turn's thinking and text as they stream, tool calls and working tasks with their state."""

from __future__ import annotations

import sys
from typing import TextIO

from mistral_workflows import subscribe
from mistral_workflows.consumer import HumanView


async def show_agent(nats_url: str, workflow_id: str, out: TextIO = sys.stdout) -> None:
    """Render every event of the workflow until it ends."""
    view = HumanView(out)
    async for event in subscribe(nats_url, workflow_exec_id=workflow_id, until_complete=True):
        view.show(event)
