"""The live page draws an agent in headless Chromium: its todo list as a checklist, each
model turn's thinking, text and tool calls, and the tool's working task with its state; a
list whose step failed shows that step stopped and the failure."""

from __future__ import annotations

import contextlib
from typing import Any

from temporalio.client import WorkflowFailureError

from examples import agent, scripted_model
from tests.conversational import todo_workflows
from tests.gateway.test_live_page import browser_page, chromium  # noqa: F401 (a fixture)
from tests.support import plugged_client, running_worker, unique

WORKFLOWS = [agent.AgentWorkflow, todo_workflows.TodoInWorkflow]
ACTIVITIES = [agent.model_turn, agent.run_tool, todo_workflows.todo_activity]

# What the page shows once the root workflow's status badge says it ended.
READ_VIEW = """(root) => {
    const all = (sel) => [...document.querySelectorAll(sel)];
    const text = (sel) => all(sel).map((n) => n.textContent);
    return {
        items: all(".todo-item").map(
            (n) => [n.dataset.status, n.querySelector(".todo-title").textContent]),
        thinking: text(".chat .thinking"),
        texts: text(".chat .text"),
        calls: text(".tool-calls .tool-call-text"),
        tool: all(".working .tool-ui").map((n) => [n.dataset.type, n.dataset.status,
            n.querySelector(".tool-call-text").textContent,
            n.querySelector(".tool-result") && n.querySelector(".tool-result").textContent]),
        failures: text('.task[data-task-type="todo_list"] .failure'),
    };
}"""
ENDED = """(root) => {
    const s = document.querySelector(`section[data-exec-id="${root}"] > .title > .status`);
    return s && (s.textContent === "completed" || s.textContent === "failed");
}"""


async def watch(page: Any, gateway: Any, root: str) -> None:
    await page.goto(f"{gateway.url}/ui/executions/{root}")
    await page.wait_for_selector('#connection[data-state="live"]')


async def test_live_page_draws_the_agent(
    chromium,  # noqa: F811 (the fixture)
    gateway,
    nats_url,
    temporal_address,
    task_queue,
):
    """Opened before the agent starts, the page ends with every step checked, the first
    turn's thinking and tool call, the tool's success with its value, and the answer."""
    root = unique("gw-agent")
    client = await plugged_client(temporal_address, nats_url)
    async with (
        browser_page(chromium) as page,
        running_worker(client, task_queue, WORKFLOWS, ACTIVITIES),
    ):
        await watch(page, gateway, root)
        await client.execute_workflow(
            agent.AgentWorkflow.run, "Weather?", id=root, task_queue=task_queue
        )
        await page.wait_for_function(ENDED, arg=root, timeout=30_000)
        view = await page.evaluate(READ_VIEW, root)
    assert view["items"] == [
        ["done", "Decide what to look up"],
        ["done", "Look up the weather"],
        ["done", "Answer"],
    ]
    assert view["thinking"] == ["The user asks about the weather; I should call get_weather."]
    assert view["texts"] == [scripted_model.ANSWER]
    assert view["calls"] == ['get_weather({"city": "Paris"})']
    value = '{"city":"Paris","celsius":18,"sky":"sunny"}'
    assert view["tool"] == [["generic_tool", "success", 'get_weather({"city":"Paris"})', value]]
    assert view["failures"] == []


async def test_live_page_shows_the_failed_step(
    chromium,  # noqa: F811 (the fixture)
    gateway,
    nats_url,
    temporal_address,
    task_queue,
):
    """A list whose second step raised shows the first step done, the second stopped,
    the third to do, and the failure's message."""
    root = unique("gw-todo-failed")
    client = await plugged_client(temporal_address, nats_url)
    async with (
        browser_page(chromium) as page,
        running_worker(client, task_queue, WORKFLOWS, ACTIVITIES),
    ):
        await watch(page, gateway, root)
        with contextlib.suppress(WorkflowFailureError):  # the failure is what the page shows
            await client.execute_workflow(
                todo_workflows.TodoInWorkflow.run, True, id=root, task_queue=task_queue
            )
        await page.wait_for_function(ENDED, arg=root, timeout=30_000)
        view = await page.evaluate(READ_VIEW, root)
    assert view["items"] == [["done", "fetch"], ["stopped", "parse"], ["todo", "store"]]
    assert view["failures"] == [f"BadPage: {todo_workflows.MESSAGE}"]


# Draws each state with the page's own drawShape and reads back what a user would see.
DRAW = """(cases) => cases.map(([type, status, state]) => {
    const node = document.createElement("div");
    const drawn = drawShape(node, {type, status, state});
    const all = (sel) => [...node.querySelectorAll(sel)];
    const text = (sel) => all(sel).map((n) => n.textContent);
    return {
        drawn,
        title: text(".working-title"),
        ui: all(".tool-ui").map((n) => [n.dataset.type, n.dataset.status || null]),
        calls: text(".tool-call-text"),
        results: text(".tool-result"),
        files: text(".file-op"),
        items: all(".todo-item").map((n) => n.dataset.status),
        call_status: all(".tool-call").map((n) => n.dataset.status || null),
        thinking: text(".thinking"),
    };
})"""


def _working(tool: dict[str, Any] | None, kind: str = "tool") -> dict[str, Any]:
    return {"type": kind, "title": "T", "content": "C", "toolUIState": tool}


def _command(result: dict[str, Any]) -> dict[str, Any]:
    return {"type": "command", "toolCallId": "t", "command": "pytest -q", "result": result}


def _generic(result: dict[str, Any]) -> dict[str, Any]:
    tool = {"type": "generic_tool", "toolCallId": "t", "name": "search"}
    return {**tool, "arguments": {"q": "tides"}, "result": result}


async def test_live_page_draws_every_tool_ui_state(chromium, gateway):  # noqa: F811
    """Generic tools in each of their four results, commands in each of their three,
    file operations, thinking, a list running and ended, and a chat turn's tool calls
    are drawn with their status and result; other states are left to the JSON view."""
    items = [{"id": "1", "status": "in_progress", "title": "a", "description": ""}]
    turn = {
        "content": "",
        "reasoning": "hm",
        "tool_calls": [
            {"id": "1", "name": "f", "arguments": "{}", "status": "success", "result": 1},
            {"id": "2", "name": "g", "arguments": "{}", "status": "failed", "error": "x"},
        ],
    }
    file_ops = [{"type": "create", "uri": "file:///a"}, {"type": "delete", "uri": "file:///b"}]
    cases = [
        ["working", "running", _working(_generic({"status": "pending"}))],
        ["working", "running", _working(_generic({"status": "running"}))],
        ["working", "running", _working(_generic({"status": "success", "value": {"n": 1}}))],
        ["working", "running", _working(_generic({"status": "failed", "error": "boom"}))],
        ["working", "running", _working(_command({"status": "running"}))],
        ["working", "running", _working(_command({"status": "success", "output": "ok"}))],
        ["working", "running", _working(_command({"status": "failed", "error": "2 failed"}))],
        [
            "working",
            "running",
            _working({"type": "file", "toolCallId": "t", "operations": file_ops}),
        ],
        ["working", "running", _working(None, kind="thinking")],
        ["todo_list", "running", {"items": items}],
        ["todo_list", "failed", {"items": items}],
        ["assistant", "completed", turn],
        ["notes", "running", {"lines": ["a"]}],
    ]
    async with browser_page(chromium) as page:
        await page.goto(f"{gateway.url}/ui/executions/{unique('none')}")
        drawn = await page.evaluate(DRAW, cases)
    ui = [d["ui"] for d in drawn[:8]]
    assert ui[:4] == [[["generic_tool", s]] for s in ("pending", "running", "success", "failed")]
    assert ui[4:7] == [[["command", s]] for s in ("running", "success", "failed")]
    assert ui[7] == [["file", None]]
    assert [d["results"] for d in drawn[:7]] == [
        [],
        [],
        ['{"n":1}'],
        ["boom"],
        [],
        ["ok"],
        ["2 failed"],
    ]
    assert drawn[0]["calls"] == ['search({"q":"tides"})']
    assert drawn[4]["calls"] == ["$ pytest -q"]
    assert drawn[7]["files"] == ["create file:///a", "delete file:///b"]
    assert drawn[8]["title"] == ["thinking: T"] and drawn[8]["ui"] == []
    assert drawn[9]["items"] == ["in_progress"] and drawn[10]["items"] == ["stopped"]
    assert drawn[11]["thinking"] == ["hm"]
    assert drawn[11]["call_status"] == ["success", "failed"]
    assert drawn[11]["results"] == ["1", "x"]
    assert [d["drawn"] for d in drawn] == [True] * 12 + [False]
