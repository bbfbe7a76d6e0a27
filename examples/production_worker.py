"""A long-lived worker configured from environment variables, with metrics and tracing.

    NATS_URL=tls://nats-1:4222,tls://nats-2:4222 NATS_USER=acme-worker \\
    NATS_PASSWORD=... NATS_CA_FILE=/etc/nats/ca.pem NATS_INBOX_PREFIX=_INBOX_acme \\
    TEMPORAL_ADDRESS=temporal:7233 TEMPORAL_NAMESPACE=acme \\
    METRICS_ADDRESS=0.0.0.0:9464 python -m examples.production_worker

Serves the example workflows until SIGTERM (or Ctrl-C), finishing the running activities
first. See docs/deployment.md ("Workers") for every variable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
from collections.abc import Mapping
from typing import Any

from temporalio.client import Client, Interceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from examples.worker import ACTIVITIES, TASK_QUEUE, WORKFLOWS
from mistral_workflows import MistralWorkflowsPlugin

# Histogram buckets (seconds) for the library's figures; Temporal's defaults are meant for
# its own, longer durations.
BUCKETS = {
    "mistral_workflows_publish_ack_latency": [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    "mistral_workflows_task_first_update_delay": [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    "mistral_workflows_task_update_gap": [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30],
}


def plugin_from_env(env: Mapping[str, str] = os.environ) -> MistralWorkflowsPlugin:
    """The plugin, with its NATS connection and options from `env`."""
    options: dict[str, Any] = {}
    for variable, option in [
        ("NATS_USER", "user"),
        ("NATS_PASSWORD", "password"),
        ("NATS_CREDS", "user_credentials"),
        ("NATS_INBOX_PREFIX", "inbox_prefix"),
    ]:
        if env.get(variable):
            options[option] = env[variable]
    if env.get("NATS_CA_FILE"):
        options["tls"] = ssl.create_default_context(cafile=env["NATS_CA_FILE"])
    return MistralWorkflowsPlugin(
        nats_url=env.get("NATS_URL", "nats://127.0.0.1:4222").split(","),
        nats_options=options,
        provision_stream=env.get("PROVISION_STREAM", "true").lower() not in ("0", "false"),
        persist_timeout=float(env.get("PERSIST_TIMEOUT", "30")),
    )


def runtime_from_env(env: Mapping[str, str] = os.environ) -> Runtime | None:
    """A Temporal runtime serving Prometheus metrics on METRICS_ADDRESS (Temporal's own
    and the library's); None: the default runtime, without metrics."""
    address = env.get("METRICS_ADDRESS")
    if not address:
        return None
    prometheus = PrometheusConfig(
        bind_address=address, durations_as_seconds=True, histogram_bucket_overrides=BUCKETS
    )
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))


def interceptors_from_env(env: Mapping[str, str] = os.environ) -> list[Interceptor]:
    """temporalio's OpenTelemetry interceptor when TRACING=1 (spans for workflows and
    activities, whose context every event then carries)."""
    if env.get("TRACING", "0").lower() in ("0", "false", ""):
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]


async def serve(env: Mapping[str, str] = os.environ) -> None:
    """Run the worker until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    plugin = plugin_from_env(env)
    client = await Client.connect(
        env.get("TEMPORAL_ADDRESS", "127.0.0.1:7233"),
        namespace=env.get("TEMPORAL_NAMESPACE", "default"),
        plugins=[plugin],
        runtime=runtime_from_env(env),
        interceptors=interceptors_from_env(env),
    )
    task_queue = env.get("TASK_QUEUE", TASK_QUEUE)
    async with Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=ACTIVITIES):
        await asyncio.wait_for(plugin.wait_connected(), 30)
        print(f"worker ready on task queue {task_queue!r}", flush=True)
        await stop.wait()
        print("stopping: finishing the running activities", flush=True)
    print("worker stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(serve())
