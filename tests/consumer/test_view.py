"""The human view: text as it streams, progress bars and one-line status (snapshot)."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from mistral_workflows import StreamEvent
from mistral_workflows.consumer import HumanView
from mistral_workflows.core.envelope import envelope
from mistral_workflows.core.events import CUSTOM_TASK_EVENT_TYPES, EventType
from tests.consumer.test_resume import publish
from tests.support import consumer_made, unique

SNAPSHOT = Path(__file__).parent / "snapshots" / "human_view.txt"
T0 = 1_777_890_600_000_000_000


class Script:
    """Builds a fixed sequence of events, as two tasks of one activity would produce them."""

    def __init__(self) -> None:
        self.events: list[StreamEvent] = []
        self.seqs: dict[str, int] = {}

    def add(self, event_type: EventType, stream: str, attributes: dict[str, Any]) -> None:
        n = len(self.events)
        if event_type in CUSTOM_TASK_EVENT_TYPES:
            seq = self.seqs.get(stream, -1) + 1
            self.seqs[stream] = seq
            attributes = {
                "custom_task_id": f"task-{stream}",
                "custom_task_type": stream,
                "task_sequence": seq,
                **attributes,
            }
        body = envelope(
            stream=stream,
            event_type=event_type,
            event_id=f"e{n}",
            attributes=attributes,
            origin={
                "workflow_name": "ChatWorkflow",
                "workflow_exec_id": "chat-1",
                "root_workflow_exec_id": "chat-1",
                "parent_workflow_exec_id": None,
                "workflow_run_id": "r1",
            },
            workflow_context={
                "namespace": "default",
                "workflow_name": "ChatWorkflow",
                "workflow_exec_id": "chat-1",
            },
            activity_context={"activity_id": "1", "activity_name": "chat", "attempt": 1},
            now_ns=T0 + n * 1_500_000,
        )
        event = StreamEvent.model_validate(body)
        event.broker_sequence = 100 + n
        self.events.append(event)


def json_value(value: Any) -> dict[str, Any]:
    return {"payload": {"type": "json", "value": value}}


def patch(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"payload": {"type": "json_patch", "value": list(ops)}}


def scripted_events() -> list[StreamEvent]:
    s = Script()
    s.add(
        EventType.WORKFLOW_EXECUTION_STARTED,
        "_lifecycle",
        {"task_id": "chat-1", "workflow_name": "ChatWorkflow", "input": {"value": None}},
    )
    s.add(
        EventType.ACTIVITY_TASK_STARTED,
        "_lifecycle",
        {"task_id": "1", "activity_name": "chat", "input": {"value": None}},
    )
    s.add(EventType.CUSTOM_TASK_STARTED, "token-stream", json_value({"tokens": []}))
    for i, token in enumerate(["Hello", ",", " world"]):
        s.add(
            EventType.CUSTOM_TASK_IN_PROGRESS,
            "token-stream",
            patch({"op": "add", "path": f"/tokens/{i}", "value": token}),
        )
    s.add(
        EventType.CUSTOM_TASK_STARTED,
        "progress",
        json_value({"progress_idx": 0, "progress_total": 4}),
    )
    s.add(
        EventType.CUSTOM_TASK_IN_PROGRESS,
        "progress",
        patch({"op": "replace", "path": "/progress_idx", "value": 2}),
    )
    s.add(
        EventType.CUSTOM_TASK_IN_PROGRESS,
        "token-stream",
        patch({"op": "add", "path": "/tokens/3", "value": "!"}),
    )
    s.add(
        EventType.CUSTOM_TASK_COMPLETED,
        "token-stream",
        json_value({"tokens": ["Hello", ",", " world", "!"]}),
    )
    s.add(
        EventType.CUSTOM_TASK_FAILED,
        "progress",
        {"failure": {"message": "RuntimeError: disk full"}},
    )
    s.add(
        EventType.ACTIVITY_TASK_RETRYING,
        "_lifecycle",
        {
            "task_id": "1",
            "activity_name": "chat",
            "attempt": 1,
            "failure": {"message": "RuntimeError: disk full"},
        },
    )
    s.add(
        EventType.WORKFLOW_EXECUTION_COMPLETED,
        "_lifecycle",
        {"task_id": "chat-1", "result": {"value": None}},
    )
    return s.events


def render() -> str:
    out = io.StringIO()
    view = HumanView(out)
    for event in scripted_events():
        view.show(event)
    return out.getvalue()


def test_human_view_matches_snapshot():
    """The human view of a fixed event sequence is exactly the recorded snapshot.

    After an intended change of the view, rewrite the snapshot with `render()` and review it.
    """
    assert render() == SNAPSHOT.read_text()


def test_human_view_shows_text_bars_and_failures():
    """The view shows the streamed text, a progress bar and the failure message."""
    text = render()
    assert "token-stream: Hello, world!" in text
    assert "[##########..........] 2/4" in text
    assert "progress failed: RuntimeError: disk full" in text


async def test_tail_follows_new_events_and_exits_on_ctrl_c(nats_url):
    """`tail` prints events published after it starts, and Ctrl-C exits quietly with 130."""
    wid = unique("tail")
    await publish(nats_url, wid, 0, 1)  # older: must not be shown
    command = [sys.executable, "-m", "mistral_workflows", "tail", "--nats-url", nats_url]
    async with consumer_made(nats_url) as made:
        with subprocess.Popen(  # noqa: ASYNC220 - the test drives a real terminal command
            [*command, "--format", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            try:
                await made()  # its consumer exists: whatever is published now is shown
            except AssertionError:
                proc.kill()
                raise
            await publish(nats_url, wid, 1, 2)
            lines = [proc.stdout.readline() for _ in range(2)]
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=10)
            err = proc.stderr.read()
    ids = [StreamEvent.model_validate_json(line).data.event_id for line in lines]
    assert ids == ["event-1", "event-2"]
    assert code == 130 and "Traceback" not in err
