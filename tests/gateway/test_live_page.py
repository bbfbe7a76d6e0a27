"""The live page in headless Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from examples import fake_llm
from tests.gateway import live_workflows
from tests.gateway.gateway_support import gateway_process
from tests.support import collect, plugged_client, running_worker, unique

CHROMIUM = "/usr/bin/chromium"
# Flags for a closed network (no background connections) and a root user in a container.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _install_chromium() -> str:
    """Debian's chromium, installed with apt-get when missing."""
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.skip("chromium is not installed and there is no apt-get to install it with")
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed and installing it with apt-get needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "--no-install-recommends", "chromium"]
    done = subprocess.run(install, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        subprocess.run([apt, "update"], env=env, capture_output=True)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"apt-get could not install chromium: {done.stderr[-500:]}")
    return CHROMIUM


def _playwright() -> Any:
    """Playwright's async API (the dev group has it; installed with pip when missing)."""
    try:
        return importlib.import_module("playwright.async_api")
    except ModuleNotFoundError:
        pip = [sys.executable, "-m", "pip", "install", "-q", "playwright>=1.50"]
        if subprocess.run(pip, capture_output=True).returncode != 0:
            pytest.skip("playwright is not installed and pip could not install it")
        return importlib.import_module("playwright.async_api")


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of a Chromium to drive."""
    return _install_chromium()


@contextlib.asynccontextmanager
async def browser_page(chromium: str) -> AsyncIterator[Any]:
    """A page of a fresh headless Chromium."""
    async with _playwright().async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            yield await browser.new_page()
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def live_worker(temporal_address: str, nats_url: str, task_queue: str) -> AsyncIterator[Any]:
    """A worker of the live-page workflows; yields its client."""
    client = await plugged_client(temporal_address, nats_url)
    async with running_worker(
        client,
        task_queue,
        [live_workflows.LiveParent, live_workflows.LiveChild],
        [live_workflows.count_steps, live_workflows.write_reply],
    ):
        yield client


def _selector(exec_id: str, inner: str) -> str:
    return f'section[data-exec-id="{exec_id}"] {inner}'


async def _final_view(page: Any, root: str) -> dict[str, Any]:
    child = f"{root}-child"
    await page.wait_for_function(
        """([root, child, reply]) => {
            const text = document.querySelector(`section[data-exec-id="${child}"] .text`);
            const status = (id) => document.querySelector(
                `section[data-exec-id="${id}"] > .title > .status`);
            return text && text.textContent === reply && status(root)
                && status(root).textContent === "completed";
        }""",
        arg=[root, child, fake_llm.REPLY],
        timeout=30_000,
    )
    return await page.evaluate(
        """([root, child]) => ({
            text: document.querySelector(`section[data-exec-id="${child}"] .text`).textContent,
            progress: document.querySelector(".progress-label").textContent.trim(),
            child_status: document.querySelector(
                `section[data-exec-id="${child}"] > .title > .status`).textContent,
            child_is_nested: !!document.querySelector(
                `section[data-exec-id="${root}"] section[data-exec-id="${child}"]`),
            applied: window.liveView.applied,
            received: window.liveView.received,
            opens: window.liveView.opens,
        })""",
        [root, child],
    )


async def test_live_page_shows_the_tree_streaming(
    chromium, gateway, nats_url, temporal_address, task_queue
):
    """Opened before the workflow starts, the page shows the child workflow nested in the
    root, the progress bar full, the reply text complete, every status completed, and it
    applied each stored event of the tree once, in order."""
    root = unique("gw-live")
    async with (
        browser_page(chromium) as page,
        live_worker(temporal_address, nats_url, task_queue) as client,
    ):
        await page.goto(f"{gateway.url}/ui/executions/{root}")
        await page.wait_for_selector('#connection[data-state="live"]')
        await client.execute_workflow(
            live_workflows.LiveParent.run, 0.03, id=root, task_queue=task_queue
        )
        view = await _final_view(page, root)
    stored = [e.broker_sequence for e in await collect(nats_url, root_workflow_exec_id=root)]
    assert view["text"] == fake_llm.REPLY
    assert view["progress"] == f"{live_workflows.STEPS} / {live_workflows.STEPS}"
    assert view["child_status"] == "completed"
    assert view["child_is_nested"]
    assert view["received"] == view["applied"] == stored


async def test_live_page_resumes_after_the_gateway_restarts(
    chromium, nats_url, temporal_address, task_queue
):
    """The gateway is killed while the reply streams and started again on the same port:
    the page reconnects (EventSource sends Last-Event-ID), receives each event once and
    ends with the exact text. The text was partial when the gateway died (control: the
    resume was needed)."""
    root = unique("gw-live-restart")
    with gateway_process(nats_url) as first:
        port = int(first.url.rsplit(":", 1)[1])
        async with (
            browser_page(chromium) as page,
            live_worker(temporal_address, nats_url, task_queue) as client,
        ):
            await page.goto(f"{first.url}/ui/executions/{root}?token=anything")
            await page.wait_for_selector('#connection[data-state="live"]')
            handle = await client.start_workflow(
                live_workflows.LiveParent.run, 0.1, id=root, task_queue=task_queue
            )
            await page.wait_for_function(
                "() => (document.querySelector('.text') || {}).textContent?.length > 10",
                timeout=30_000,
            )
            os.kill(first.process.pid, signal.SIGKILL)
            first.process.wait()
            partial = await page.evaluate("() => document.querySelector('.text').textContent")
            with gateway_process(nats_url, port=port) as second:
                assert second.url == first.url
                await handle.result()
                view = await _final_view(page, root)
    stored = [e.broker_sequence for e in await collect(nats_url, root_workflow_exec_id=root)]
    assert len(partial) < len(fake_llm.REPLY)
    assert view["text"] == fake_llm.REPLY
    assert view["opens"] >= 2
    assert view["received"] == view["applied"] == stored
