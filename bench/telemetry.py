"""Instrumentation overhead: Task publish throughput with metrics and tracing on vs off.

Two workers in the same process, same servers, same activity (`publish.stream_counter`):
one with the library's metrics recorded through a Temporal runtime that serves Prometheus
and with temporalio's OpenTelemetry interceptor (an SDK tracer provider, so every event
carries a `traceparent`), one with `metrics=False, tracing=False` on the default runtime.
Rounds alternate between them; medians are compared.
"""

from __future__ import annotations

import statistics
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from bench._common import Row, Servers
from bench.publish import PublishBench, stream_counter
from mistral_workflows import MistralWorkflowsPlugin
from mistral_workflows.dev import free_port

ROUNDS = 5


@asynccontextmanager
async def worker(servers: Servers, instrumented: bool) -> AsyncIterator[tuple[Client, str]]:
    """A client and a running worker, with or without metrics and tracing."""
    options: dict[str, Any] = {}
    if instrumented:
        prometheus = PrometheusConfig(bind_address=f"127.0.0.1:{free_port()}")
        options["runtime"] = Runtime(telemetry=TelemetryConfig(metrics=prometheus))
        tracer = TracerProvider().get_tracer("bench")
        options["interceptors"] = [TracingInterceptor(tracer)]
    plugin = MistralWorkflowsPlugin(
        nats_url=servers.nats_url, metrics=instrumented, tracing=instrumented
    )
    client = await Client.connect(servers.temporal_address, plugins=[plugin], **options)
    queue = f"bench-telemetry-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client, task_queue=queue, workflows=[PublishBench], activities=[stream_counter]
    ):
        yield client, queue


async def rate(client: Client, queue: str, n: int) -> float:
    return await client.execute_workflow(
        PublishBench.run, n, id=f"telemetry-{uuid.uuid4().hex[:8]}", task_queue=queue
    )


async def run(servers: Servers, n: int) -> list[Row]:
    """Alternate the instrumented and the bare worker and compare their medians."""
    on: list[float] = []
    off: list[float] = []
    rounds = ROUNDS if n >= 1000 else 1
    async with AsyncExitStack() as stack:
        instrumented = await stack.enter_async_context(worker(servers, True))
        bare = await stack.enter_async_context(worker(servers, False))
        for client, queue in (instrumented, bare):
            await rate(client, queue, 10)  # warm up
        for _ in range(rounds):
            on.append(await rate(*instrumented, n))
            off.append(await rate(*bare, n))
    on_rate, off_rate = statistics.median(on), statistics.median(off)
    ratio = on_rate / off_rate
    return [
        Row("telemetry", "Task.update_state, metrics and tracing on", on_rate, "ev/s"),
        Row("telemetry", "Task.update_state, metrics and tracing off", off_rate, "ev/s"),
        Row(
            "telemetry",
            f"instrumented / bare (medians of {rounds})",
            ratio,
            "x",
            ">= 0.9",
            ratio >= 0.9,
        ),
    ]
