"""A worker whose plugin cannot start (NATS down, bad credentials, a stream that does not fit)
raises the plugin's error from `async with Worker(...)`, `worker.run()` and
`worker.shutdown()`; it never waits for ever."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
from nats.js.api import StorageType, StreamConfig
from temporalio.client import Client
from temporalio.worker import Worker

from mistral_workflows import (
    BrokerConnectionError,
    ConfigurationError,
    MistralWorkflowsError,
    MistralWorkflowsPlugin,
)
from mistral_workflows.dev import NatsServer, free_port
from mistral_workflows.worker import _plugin
from tests.support import unique
from tests.workflows import RunActivity

# Far above the few seconds a failed start takes: only a hang reaches it.
BOUND = 30.0
# How long the negative control waits, after the plugin's error, for the block to end.
HANG = 5.0

PASSWORD_CONFIG = 'authorization { users = [{ user: "worker", password: "right" }] }'


def dead_url() -> str:
    return f"nats://127.0.0.1:{free_port()}"


def dead_plugin(url: str) -> MistralWorkflowsPlugin:
    return MistralWorkflowsPlugin(nats_url=url, connect_attempts=1, connect_timeout=1)


def worker_of(client: Client, task_queue: str) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=[RunActivity])


async def inside_async_with(worker: Worker, failed: asyncio.Event) -> None:
    """Enter the worker's block and wait there until the worker's failure cancels it."""
    async with worker:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            failed.set()
            raise


async def async_with_error(client: Client, task_queue: str) -> BaseException:
    """The error `async with Worker(...)` raises, or TimeoutError if the block hangs."""
    failed = asyncio.Event()
    try:
        await asyncio.wait_for(inside_async_with(worker_of(client, task_queue), failed), BOUND)
    except BaseException as e:
        assert failed.is_set() or isinstance(e, TimeoutError)
        return e
    raise AssertionError("the block ended without an error")


async def test_async_with_raises_the_error_naming_a_dead_url(temporal_address, task_queue):
    """NATS unreachable: the block ends at once with BrokerConnectionError naming the URL."""
    url = dead_url()
    client = await Client.connect(temporal_address, plugins=[dead_plugin(url)])
    error = await async_with_error(client, task_queue)
    assert isinstance(error, BrokerConnectionError) and url in str(error)


async def test_negative_control_without_the_fix_async_with_hangs(
    temporal_address, task_queue, monkeypatch
):
    """Without marking the unstarted worker stopped, the block still waits after the error."""
    monkeypatch.setattr(_plugin, "_mark_stopped_without_running", lambda worker: None)
    client = await Client.connect(temporal_address, plugins=[dead_plugin(dead_url())])
    failed = asyncio.Event()
    block = asyncio.create_task(inside_async_with(worker_of(client, task_queue), failed))
    try:
        await asyncio.wait_for(failed.wait(), BOUND)  # the plugin's error has surfaced
        done, _ = await asyncio.wait({block}, timeout=HANG)
        assert not done, "the block ended: this control no longer detects the hang"
    finally:
        block.cancel()
        await asyncio.wait({block}, timeout=BOUND)


async def test_empty_block_ends_too(temporal_address, task_queue):
    """A block that ends before the plugin gives up is cancelled by temporalio; no hang."""
    client = await Client.connect(temporal_address, plugins=[dead_plugin(dead_url())])

    async def empty_block() -> None:
        async with worker_of(client, task_queue):
            pass

    block = asyncio.create_task(empty_block())
    done, _ = await asyncio.wait({block}, timeout=BOUND)
    assert done and block.cancelled()


async def _mismatched_stream(nats_url: str, tmp_path: Path) -> MistralWorkflowsPlugin:
    name = unique("MISMATCH").replace("-", "_")
    nc = await nats.connect(nats_url)
    config = StreamConfig(name=name, subjects=[f"{name}.>"], storage=StorageType.MEMORY)
    await nc.jetstream().add_stream(config)
    await nc.close()
    return MistralWorkflowsPlugin(nats_url=nats_url, stream_name=name, subject_prefix=name)


async def _three_replicas_on_one_server(nats_url: str, tmp_path: Path) -> MistralWorkflowsPlugin:
    name = unique("R3").replace("-", "_")
    return MistralWorkflowsPlugin(
        nats_url=nats_url, stream_name=name, subject_prefix=name, replicas=3
    )


@pytest.mark.parametrize(
    ("make_plugin", "error", "named"),
    [
        (_mismatched_stream, MistralWorkflowsError, "already exists with other settings"),
        (_three_replicas_on_one_server, ConfigurationError, "replicas=3"),
    ],
)
async def test_async_with_raises_stream_errors(
    temporal_address, nats_url, task_queue, tmp_path, make_plugin, error, named
):
    """A stream that does not fit, or cannot be created, ends the block with its error."""
    plugin: MistralWorkflowsPlugin = await make_plugin(nats_url, tmp_path)
    client = await Client.connect(temporal_address, plugins=[plugin])
    raised = await async_with_error(client, task_queue)
    assert isinstance(raised, error) and named in str(raised)


async def test_async_with_raises_refused_credentials(temporal_address, task_queue, tmp_path):
    """A wrong password ends the block with the refusal, not a hang."""
    with NatsServer(store_dir=tmp_path, config=PASSWORD_CONFIG) as server:
        options = {"user": "worker", "password": "wrong"}
        plugin = MistralWorkflowsPlugin(nats_url=server.url, nats_options=options)
        client = await Client.connect(temporal_address, plugins=[plugin])
        error = await async_with_error(client, task_queue)
    assert isinstance(error, BrokerConnectionError) and "refused our credentials" in str(error)


async def test_run_raises_and_a_later_shutdown_returns(temporal_address, task_queue):
    """worker.run() raises the plugin's error; shutdown() afterwards returns at once."""
    url = dead_url()
    client = await Client.connect(temporal_address, plugins=[dead_plugin(url)])
    worker = worker_of(client, task_queue)
    with pytest.raises(BrokerConnectionError, match=url):
        await asyncio.wait_for(worker.run(), BOUND)
    await asyncio.wait_for(worker.shutdown(), BOUND)
    assert worker.is_shutdown and not worker.is_running


async def test_shutdown_requested_while_connecting_returns(temporal_address, task_queue):
    """shutdown() called while the plugin is still connecting returns once it gives up."""
    url = f"nats://127.0.0.1:{free_port()}"
    plugin = MistralWorkflowsPlugin(nats_url=url, connect_attempts=3, connect_timeout=1)
    client = await Client.connect(temporal_address, plugins=[plugin])
    worker = worker_of(client, task_queue)
    running = asyncio.create_task(worker.run())
    await asyncio.sleep(0)  # the plugin is now connecting
    await asyncio.wait_for(worker.shutdown(), BOUND)
    with pytest.raises(BrokerConnectionError, match=url):
        await asyncio.wait_for(running, BOUND)


async def test_client_connect_with_the_plugin_needs_no_nats(temporal_address):
    """Client.connect with a plugin pointed at a dead URL does not touch NATS."""
    client = await asyncio.wait_for(
        Client.connect(temporal_address, plugins=[dead_plugin(dead_url())]), BOUND
    )
    assert await asyncio.wait_for(client.service_client.check_health(), BOUND)
