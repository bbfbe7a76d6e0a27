"""The start-up check refuses an existing stream whose settings lose or refuse events, for
the event stream and the snapshot stream, whether the plugin provisions streams or not."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import nats
import pytest
from nats.js.api import DiscardPolicy, RetentionPolicy, StreamConfig
from temporalio.client import Client
from temporalio.worker import Worker

from mistral_workflows import MistralWorkflowsPlugin, StreamMismatchError
from tests.support import unique
from tests.workflows import RunActivity

# Far above the second a start takes: only a hang reaches it.
BOUND = 30.0

LOSSY: dict[str, tuple[dict[str, Any], str]] = {
    "interest": ({"retention": RetentionPolicy.INTEREST}, "retention='interest'"),
    "workqueue": ({"retention": RetentionPolicy.WORK_QUEUE}, "retention='workqueue'"),
    "max_msgs": ({"max_msgs": 1000}, "max_msgs=1000: deletes the oldest"),
    "max_bytes_new": (
        {"max_bytes": 10_000_000, "discard": DiscardPolicy.NEW},
        "max_bytes=10000000: refuses new events",
    ),
    "per_subject": ({"max_msgs_per_subject": 10}, "max_msgs_per_subject=10"),
    "no_ack": ({"no_ack": True}, "no_ack=True"),
}


def names() -> tuple[str, str]:
    name = unique("CHECK").replace("-", "_")
    return name, name.lower()


async def create_streams(nats_url: str, *configs: StreamConfig) -> None:
    nc = await nats.connect(nats_url)
    for config in configs:
        await nc.jetstream().add_stream(config)
    await nc.close()


async def start_error(plugin: MistralWorkflowsPlugin, address: str, queue: str) -> Any:
    """The error a plugged worker fails to start with, or None once it is connected."""
    client = await Client.connect(address, plugins=[plugin])
    worker = Worker(client, task_queue=queue, workflows=[RunActivity])
    run = asyncio.create_task(worker.run())
    connected = asyncio.create_task(plugin.wait_connected())
    done, _ = await asyncio.wait({run, connected}, timeout=BOUND, return_when="FIRST_COMPLETED")
    assert done, "the worker neither started nor failed"
    if run in done:
        connected.cancel()
        return run.exception()
    await worker.shutdown()
    await run
    return None


@pytest.mark.parametrize("case", sorted(LOSSY))
async def test_lossy_event_stream_is_refused(temporal_address, nats_url, task_queue, case):
    """An event stream that deletes or refuses events stops the worker, naming the setting."""
    name, prefix = names()
    plugin = MistralWorkflowsPlugin(nats_url=nats_url, stream_name=name, subject_prefix=prefix)
    changes, named = LOSSY[case]
    await create_streams(nats_url, dataclasses.replace(plugin.stream.config(), **changes))
    error = await start_error(plugin, temporal_address, task_queue)
    assert isinstance(error, StreamMismatchError), error
    assert named in str(error) and f"nats stream rm {name}" in str(error)
    assert "https://github.com/nats-io/natscli" in str(error)  # where to get that command


async def test_sealed_event_stream_is_refused(temporal_address, nats_url, task_queue):
    """A sealed stream, which refuses every event, stops the worker."""
    name, prefix = names()
    plugin = MistralWorkflowsPlugin(nats_url=nats_url, stream_name=name, subject_prefix=prefix)
    nc = await nats.connect(nats_url)
    await nc.jetstream().add_stream(plugin.stream.config())
    await nc.jetstream().update_stream(dataclasses.replace(plugin.stream.config(), sealed=True))
    await nc.close()
    error = await start_error(plugin, temporal_address, task_queue)
    assert isinstance(error, StreamMismatchError) and "sealed=True" in str(error)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"retention": RetentionPolicy.INTEREST}, "retention='interest'"),
        (
            {"discard": DiscardPolicy.NEW, "discard_new_per_subject": True, "max_msgs": 10**6},
            "discard_new_per_subject",
        ),
    ],
)
async def test_lossy_snapshot_stream_is_refused(
    temporal_address, nats_url, task_queue, changes, named
):
    """A snapshot stream that deletes or refuses snapshots stops the worker too."""
    name, prefix = names()
    plugin = MistralWorkflowsPlugin(nats_url=nats_url, stream_name=name, subject_prefix=prefix)
    snapshots = dataclasses.replace(plugin.stream.snapshot_config(), **changes)
    await create_streams(nats_url, plugin.stream.config(), snapshots)
    error = await start_error(plugin, temporal_address, task_queue)
    assert isinstance(error, StreamMismatchError) and named in str(error)
    assert f"{name}_STATE" in str(error)


async def test_lossy_stream_is_refused_without_provisioning(temporal_address, nats_url, task_queue):
    """With provision_stream=False the worker still refuses a stream that deletes events."""
    name, prefix = names()
    plugin = MistralWorkflowsPlugin(
        nats_url=nats_url, stream_name=name, subject_prefix=prefix, provision_stream=False
    )
    interest = dataclasses.replace(plugin.stream.config(), retention=RetentionPolicy.INTEREST)
    await create_streams(nats_url, interest, plugin.stream.snapshot_config())
    error = await start_error(plugin, temporal_address, task_queue)
    assert isinstance(error, StreamMismatchError) and "retention='interest'" in str(error)


@pytest.mark.parametrize("provision", [True, False])
async def test_negative_control_the_plugins_own_streams_pass(
    temporal_address, nats_url, task_queue, provision
):
    """Streams made beforehand with the plugin's own settings are accepted."""
    name, prefix = names()
    plugin = MistralWorkflowsPlugin(
        nats_url=nats_url, stream_name=name, subject_prefix=prefix, provision_stream=provision
    )
    await create_streams(nats_url, plugin.stream.config(), plugin.stream.snapshot_config())
    assert await start_error(plugin, temporal_address, task_queue) is None
