"""`python -m examples.production_worker`: settings from the environment, the library's
metrics scraped from the Prometheus endpoint of its Temporal runtime, a clean SIGTERM."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import urllib.request

from temporalio.client import Client

from examples.production_worker import plugin_from_env
from examples.token_stream import ChatWorkflow
from mistral_workflows.dev import free_port
from tests.support import collect, unique
from tests.test_example_commands import READY_WITHIN, ROOT, environment


def scrape(port: int) -> list[tuple[str, str, float]]:
    """The samples of the library's metrics on the Prometheus endpoint: name, labels,
    value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = []
    for line in text.splitlines():
        match = re.match(r"^(mistral_workflows_\w+)(\{[^}]*\})? (\S+)$", line)
        if match:
            found.append((match.group(1), match.group(2) or "", float(match.group(3))))
    return found


def total(samples: list[tuple[str, str, float]], name: str, label: str = "") -> float:
    """The sum of the samples of `name` whose labels hold `label`."""
    return sum(value for n, labels, value in samples if n == name and label in labels)


def test_settings_come_from_the_environment():
    """The NATS URLs, credentials, inbox prefix and provisioning mode are read from env."""
    plugin = plugin_from_env(
        {
            "NATS_URL": "nats://a:4222,nats://b:4222",
            "NATS_USER": "acme-worker",
            "NATS_PASSWORD": "secret",
            "NATS_INBOX_PREFIX": "_INBOX_acme",
            "PROVISION_STREAM": "false",
        }
    )
    assert plugin.nats_url == ["nats://a:4222", "nats://b:4222"]
    assert plugin._connect["user"] == "acme-worker"
    assert plugin._connect["inbox_prefix"] == "_INBOX_acme"
    assert plugin._provision is False


async def test_the_worker_serves_and_exports_its_metrics(nats_url, temporal_address):
    """A workflow streams through the worker; its Prometheus endpoint then counts exactly
    the events stored; SIGTERM stops it cleanly."""
    port, queue = free_port(), unique("prod")
    env = {**environment(nats_url, temporal_address), "TASK_QUEUE": queue}
    env["METRICS_ADDRESS"] = f"127.0.0.1:{port}"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "examples.production_worker", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), READY_WITHIN)
        assert b"worker ready" in line, line
        client = await Client.connect(temporal_address)
        wid = unique("prod-chat")
        await client.execute_workflow(ChatWorkflow.run, "hello", id=wid, task_queue=queue)
        events = await collect(nats_url, workflow_exec_id=wid)
        samples: list[tuple[str, str, float]] = []
        for _ in range(50):  # the library reports its counters about once a second
            samples = await asyncio.to_thread(scrape, port)
            if total(samples, "mistral_workflows_events_published") >= len(events):
                break
            await asyncio.sleep(0.2)
        assert total(samples, "mistral_workflows_events_published") == len(events)
        assert total(samples, "mistral_workflows_publish_ack_latency_count") >= 1
        first = "mistral_workflows_task_first_update_delay_count"
        assert total(samples, first, 'task_type="token-stream"') == 1
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), READY_WITHIN)
        assert process.returncode == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
