"""The plugin: bounded connection, stream provisioning, persistence before results, replay."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import timedelta

import nats
import pytest
from nats.js.api import StorageType, StreamConfig
from temporalio.client import Client
from temporalio.worker import Replayer, Worker

import mistral_workflows as workflows
from mistral_workflows import (
    BrokerConnectionError,
    ConfigurationError,
    MistralWorkflowsPlugin,
    StreamMismatchError,
)
from mistral_workflows.core.emitter import Emitter
from mistral_workflows.core.events import EventType
from mistral_workflows.core.task import Task
from mistral_workflows.dev import NatsServer, free_port
from tests.support import plugged_client, running_worker, task_events, types, unique
from tests.workflows import Call, RunActivity

paused = asyncio.Event()
PAUSE_PID: list[int] = []


@workflows.activity()
async def pause_broker_then_return(n: int) -> int:
    async with Task(type="paused", state={"n": 0}) as task:
        for i in range(n):
            await task.update_state({"n": i})
            await asyncio.sleep(0)  # each update its own event (one loop turn would fold them)
        os.kill(PAUSE_PID[0], signal.SIGSTOP)
        await task.update_state({"n": n})
    paused.set()
    return n


@workflows.activity()
async def one_task() -> str:
    async with Task(type="one", state={"x": 1}) as task:
        await task.update_state({"x": 2})
    return "done"


async def run_worker_once(plugin: MistralWorkflowsPlugin, temporal_address: str, queue: str):
    client = await Client.connect(temporal_address, plugins=[plugin])
    worker = Worker(client, task_queue=queue, workflows=[RunActivity], activities=[one_task])
    return await asyncio.wait_for(worker.run(), 30)


async def test_unreachable_nats_is_a_clear_error_within_seconds(temporal_address, task_queue):
    """A worker pointed at a dead NATS URL fails fast with an error naming the URL."""
    url = f"nats://127.0.0.1:{free_port()}"
    plugin = MistralWorkflowsPlugin(nats_url=url, connect_attempts=2, connect_timeout=1)
    started = time.monotonic()
    with pytest.raises(BrokerConnectionError, match=url):
        await run_worker_once(plugin, temporal_address, task_queue)
    assert time.monotonic() - started < 15  # never nats-py's two-minute default


async def test_error_does_not_show_the_password(temporal_address, task_queue):
    """Credentials in the URL are not repeated in the error."""
    url = f"nats://alice:s3cret@127.0.0.1:{free_port()}"
    plugin = MistralWorkflowsPlugin(nats_url=url, connect_attempts=1, connect_timeout=1)
    with pytest.raises(BrokerConnectionError) as caught:
        await run_worker_once(plugin, temporal_address, task_queue)
    assert "s3cret" not in str(caught.value) and "127.0.0.1" in str(caught.value)


@pytest.mark.parametrize(
    "options",
    [
        {"subject_prefix": "bad prefix"},
        {"stream_name": "has.dot"},
        {"replicas": 0},
        {"max_event_bytes": 10},
        {"persist_timeout": 0},
        {"nats_url": ""},
    ],
)
def test_bad_settings_fail_at_construction(options):
    """Invalid plugin settings raise ConfigurationError when the plugin is built."""
    with pytest.raises(ConfigurationError):
        MistralWorkflowsPlugin(**options)


async def test_stream_is_provisioned_as_configured(temporal_address, nats_url, task_queue):
    """The worker creates the stream with file storage, the limit and the windows."""
    name = unique("S").replace("-", "_")
    plugin = MistralWorkflowsPlugin(
        nats_url=nats_url,
        stream_name=name,
        subject_prefix=name.lower(),
        max_age=timedelta(hours=1),
        duplicate_window=timedelta(seconds=30),
        max_event_bytes=64 * 1024,
    )
    client = await Client.connect(temporal_address, plugins=[plugin])
    async with running_worker(client, task_queue, [RunActivity], [one_task]):
        await client.execute_workflow(
            RunActivity.run, Call("one_task"), id=unique("prov"), task_queue=task_queue
        )
    nc = await nats.connect(nats_url)
    config = (await nc.jetstream().stream_info(name)).config
    await nc.close()
    assert config.subjects == [f"{name.lower()}.>"]
    assert config.storage == StorageType.FILE
    assert (config.max_age, config.duplicate_window) == (3600, 30)
    assert config.max_msg_size == 64 * 1024


async def test_provisioning_is_idempotent(temporal_address, nats_url, task_queue):
    """Two workers of two plugin instances with the same settings share the stream."""
    first = await plugged_client(temporal_address, nats_url)
    second = await plugged_client(temporal_address, nats_url)
    wid = unique("twice")
    async with (
        running_worker(first, task_queue, [RunActivity], [one_task]),
        running_worker(second, task_queue, [RunActivity], [one_task]),
    ):
        await first.execute_workflow(
            RunActivity.run, Call("one_task"), id=wid, task_queue=task_queue
        )
    assert len(await task_events(nats_url, workflow_exec_id=wid)) == 3


async def test_incompatible_stream_is_an_error_and_left_alone(
    temporal_address, nats_url, task_queue
):
    """An existing stream with other settings is reported, never changed."""
    name = unique("OTHER").replace("-", "_")
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(name=name, subjects=["elsewhere.>"], storage=StorageType.MEMORY, max_age=60)
    )
    plugin = MistralWorkflowsPlugin(nats_url=nats_url, stream_name=name, subject_prefix="elsewhere")
    with pytest.raises(StreamMismatchError, match="storage") as caught:
        await run_worker_once(plugin, temporal_address, task_queue)
    assert "max_age" in str(caught.value)
    assert "https://github.com/nats-io/natscli" in str(caught.value)  # where to get `nats`
    config = (await js.stream_info(name)).config
    await nc.close()
    assert (config.storage, config.max_age) == (StorageType.MEMORY, 60)


async def test_replay_needs_no_nats(temporal_address, nats_url, task_queue):
    """Histories replay with the plugin installed and no NATS server at its URL."""
    client = await plugged_client(temporal_address, nats_url)
    wid = unique("replay")
    async with running_worker(client, task_queue, [RunActivity], [one_task]):
        handle = await client.start_workflow(
            RunActivity.run, Call("one_task"), id=wid, task_queue=task_queue
        )
        await handle.result()
    history = await handle.fetch_history()
    dead = MistralWorkflowsPlugin(nats_url=f"nats://127.0.0.1:{free_port()}")
    replayer = Replayer(workflows=[RunActivity], plugins=[dead])
    result = await asyncio.wait_for(replayer.replay_workflow(history), 30)
    assert result.replay_failure is None


async def pause_scenario(temporal_address, task_queue, tmp_path) -> tuple[bool, list[str]]:
    """Pause NATS before an activity's last event; did the result arrive while paused?"""
    with NatsServer(store_dir=tmp_path) as server:
        PAUSE_PID[:] = [server.pid]
        paused.clear()
        client = await plugged_client(temporal_address, server.url)
        wid = unique("paused")
        async with running_worker(client, task_queue, [RunActivity], [pause_broker_then_return]):
            handle = await client.start_workflow(
                RunActivity.run,
                Call("pause_broker_then_return", [20]),
                id=wid,
                task_queue=task_queue,
            )
            await asyncio.wait_for(paused.wait(), 30)
            try:
                await asyncio.wait_for(asyncio.shield(handle.result()), 1.5)
                early = True
            except TimeoutError:
                early = False
            finally:
                os.kill(server.pid, signal.SIGCONT)
            await handle.result()
        return early, types(await task_events(server.url, workflow_exec_id=wid))


async def test_result_waits_until_every_event_is_stored(temporal_address, task_queue, tmp_path):
    """While JetStream cannot acknowledge, the activity's result is held back; nothing is lost."""
    early, seen = await pause_scenario(temporal_address, task_queue, tmp_path)
    assert not early
    assert seen == [EventType.CUSTOM_TASK_STARTED] + [EventType.CUSTOM_TASK_IN_PROGRESS] * 20 + [
        EventType.CUSTOM_TASK_COMPLETED
    ]


async def test_negative_control_without_flush_the_result_is_early(
    temporal_address, task_queue, tmp_path, monkeypatch
):
    """Without the final flush the result does come back while NATS is paused."""

    async def no_flush(self: Emitter) -> None:
        return None

    monkeypatch.setattr(Emitter, "flush", no_flush)
    early, _ = await pause_scenario(temporal_address, task_queue, tmp_path)
    assert early
