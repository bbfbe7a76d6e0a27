"""A 3-node JetStream cluster loses the stream's leader mid-stream: the activity completes,
and consumers read every acknowledged event exactly once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

import nats
import pytest
from nats.aio.client import Client as NATS
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

import mistral_workflows as workflows
from mistral_workflows import MistralWorkflowsPlugin, StreamEvent, subscribe
from mistral_workflows.core.connection import connect
from mistral_workflows.core.errors import ConfigurationError
from mistral_workflows.core.events import CUSTOM_TASK_EVENT_TYPES, EventType
from mistral_workflows.core.subjects import snapshot_stream
from mistral_workflows.core.task import Task
from mistral_workflows.dev import NatsCluster, NatsServer
from mistral_workflows.worker._stream import StreamSettings, provision
from tests.support import IDLE, rebuilt, running_worker, unique
from tests.workflows import Noop

SETTINGS = StreamSettings(name="CLUSTER_EVENTS", prefix="cluster", replicas=3)
BEFORE, AFTER = 100, 200  # updates before and after the kill
at_kill_point = asyncio.Event()
killed = asyncio.Event()


@workflows.activity()
async def stream_through_a_failover() -> dict[str, int]:
    async with Task(type="counter", state={"n": 0}) as task:
        for i in range(1, BEFORE + AFTER + 1):
            await task.update_state({"n": i})
            if i == BEFORE:
                at_kill_point.set()
                await killed.wait()
            # Like tokens from a model: streaming goes on while the cluster elects a leader.
            await asyncio.sleep(0.002 if i < BEFORE else 0.01)
    return task.state


@workflow.defn
class FailoverWorkflow:
    @workflow.run
    async def run(self) -> dict[str, int]:
        return await workflow.execute_activity(
            stream_through_a_failover,
            start_to_close_timeout=timedelta(seconds=90),
            retry_policy=RetryPolicy(maximum_attempts=1),  # the first attempt must succeed
        )


@dataclass
class Failover:
    result: dict[str, int]
    live: list[StreamEvent]  # read while it happened, by a consumer on the killed node
    stored: list[StreamEvent]  # read afterwards from the surviving nodes
    worker_was_on_leader: bool
    killed: NatsServer
    last_seq: int  # the stream's last sequence once the workflow is done
    election_seconds: float
    completion_seconds: float


def assert_exactly_once(events: Sequence[StreamEvent], final: int) -> None:
    """Each event of the task is there once: STARTED, every update, COMPLETED, and the
    state rebuilds to `final`. (Task sequences are contiguous from 0 to COMPLETED's.)"""
    copies = Counter(e.data.event_id for e in events)
    repeated = sorted(e.broker_sequence or 0 for e in events if copies[e.data.event_id] > 1)
    # Equal broker sequences: the consumer delivered a message twice; different ones: the
    # stream stored the event twice.
    assert not repeated, f"events read more than once, at broker sequences {repeated[:20]}"
    seen = {e.data.attributes.task_sequence for e in events}
    missing = set(range(max(seen) + 1)) - seen
    assert not missing, f"missing events: {sorted(missing)}"
    (task,) = rebuilt(events)
    assert task.status == "completed" and task.state == {"n": final}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    with NatsCluster(store_dir=tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


async def connected(urls: Sequence[str]) -> NATS:
    """A client on the first of `urls` (nats-py otherwise shuffles its server pool)."""
    return await connect(urls, dont_randomize=True, name="test-cluster")


async def stream_leader(nc: NATS) -> str | None:
    try:
        info = await asyncio.wait_for(nc.jetstream().stream_info(SETTINGS.name), 1)
    except (TimeoutError, nats.errors.Error):
        return None  # no leader to answer during an election
    return info.cluster.leader if info.cluster else None


async def wait_for_new_leader(nc: NATS, old: str) -> float:
    """Seconds until the stream has a leader other than `old`."""
    start = time.monotonic()
    while await stream_leader(nc) in (None, old):  # noqa: ASYNC110 - polling the server
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def read(nc: NATS, wid: str, **options: object) -> list[StreamEvent]:
    events = subscribe(
        nc,
        workflow_exec_id=wid,
        event_types=CUSTOM_TASK_EVENT_TYPES,
        stream_name=SETTINGS.name,
        subject_prefix=SETTINGS.prefix,
        **options,  # type: ignore[arg-type]
    )
    return [e async for e in events]


@pytest.fixture(scope="module")
async def failover(cluster: NatsCluster, temporal_address: str) -> AsyncIterator[Failover]:
    """Stream through the cluster and kill -9 the stream leader, the worker's node, mid-way."""
    at_kill_point.clear()
    killed.clear()
    admin = await connect(cluster.urls)
    try:
        await provision(admin.jetstream(), SETTINGS)
        leader = await stream_leader(admin)
    finally:
        await admin.close()
    assert leader is not None
    doomed = cluster.node(leader)
    survivors = [n.url for n in cluster.nodes if n is not doomed]
    plugin = MistralWorkflowsPlugin(
        [doomed.url, *survivors],
        stream_name=SETTINGS.name,
        subject_prefix=SETTINGS.prefix,
        replicas=SETTINGS.replicas,
        nats_options={"dont_randomize": True},
    )
    client = await Client.connect(temporal_address, plugins=[plugin])
    reader, observer = await connected([doomed.url, *survivors]), await connected(survivors)
    wid, task_queue = unique("failover"), unique("cluster")
    try:
        live = asyncio.create_task(read(reader, wid, until_complete=True))
        acts = [stream_through_a_failover]
        async with running_worker(client, task_queue, [FailoverWorkflow], acts):
            await asyncio.wait_for(plugin.wait_connected(), 30)
            assert plugin.publisher is not None
            worker_was_on_leader = (
                plugin.publisher.nc.connected_url.netloc == urlparse(doomed.url).netloc
            )
            handle = await client.start_workflow(
                FailoverWorkflow.run, id=wid, task_queue=task_queue
            )
            await asyncio.wait_for(at_kill_point.wait(), 30)
            doomed.kill()
            start = time.monotonic()
            killed.set()
            election = await asyncio.wait_for(wait_for_new_leader(observer, leader), 30)
            result = await asyncio.wait_for(handle.result(), 60)
            completion = time.monotonic() - start
        outcome = Failover(
            result=result,
            live=await asyncio.wait_for(live, 60),
            stored=await read(observer, wid, idle_timeout=IDLE),
            worker_was_on_leader=worker_was_on_leader,
            killed=doomed,
            last_seq=(await observer.jetstream().stream_info(SETTINGS.name)).state.last_seq,
            election_seconds=election,
            completion_seconds=completion,
        )
    finally:
        live.cancel()
        await reader.close()
        await observer.close()
    print(
        f"\nfailover: new stream leader {election:.2f}s after the kill, activity done after "
        f"{completion:.2f}s; {len(outcome.live)} events read live, {len(outcome.stored)} after"
    )
    yield outcome


async def test_activity_completes_when_the_stream_leader_is_killed(failover: Failover) -> None:
    """kill -9 of the stream leader, which is also the worker's server, does not fail the
    activity: the worker fails over and its first attempt completes."""
    assert failover.worker_was_on_leader
    assert failover.result == {"n": BEFORE + AFTER}


async def test_every_event_is_stored_once_across_a_failover(failover: Failover) -> None:
    """After the failover, the surviving nodes hold each acknowledged event exactly once."""
    assert_exactly_once(failover.stored, BEFORE + AFTER)


async def test_a_live_consumer_reads_each_event_once_across_a_failover(failover: Failover) -> None:
    """A consumer connected to the killed node reconnects and reads each event once."""
    assert_exactly_once(failover.live, BEFORE + AFTER)


async def test_negative_control_the_check_catches_loss_and_duplicates(failover: Failover) -> None:
    """The exactly-once check fails on a lost event and on a repeated one."""
    events = failover.stored
    k = len(events) - 10  # an update sent after the kill
    assert events[k].data.event_type == EventType.CUSTOM_TASK_IN_PROGRESS
    with pytest.raises(AssertionError, match="missing events"):
        assert_exactly_once(events[:k] + events[k + 1 :], BEFORE + AFTER)
    with pytest.raises(AssertionError, match="read more than once"):
        assert_exactly_once([*events, events[k]], BEFORE + AFTER)


def node_state(node: NatsServer, stream: str) -> dict[str, Any]:
    """The stream's state as stored by this node (its own replica)."""
    jsz = node.monitor("jsz?streams=true") or {}
    for account in jsz.get("account_details", []):
        for detail in account.get("stream_detail", []):
            if detail["name"] == stream:
                return dict(detail["state"])
    return {}


async def test_killed_node_rejoins_and_catches_up(failover: Failover) -> None:
    """Restarted on its store, the killed node catches up with every event it missed."""
    node = failover.killed.restart()
    # pytest-timeout bounds this wait.
    while node_state(node, SETTINGS.name).get("last_seq") != failover.last_seq:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    assert node_state(node, SETTINGS.name)["messages"] == failover.last_seq


async def test_plugin_provisions_streams_with_three_replicas(
    cluster: NatsCluster, temporal_address: str
) -> None:
    """On a cluster, the plugin creates both streams with 3 replicas."""
    for node in cluster.nodes:
        node.start()  # no-op for a running node
    cluster.wait_for_meta_leader()
    name, prefix = "CLUSTER_PROVISIONED", "provisioned"
    plugin = MistralWorkflowsPlugin(
        cluster.urls, stream_name=name, subject_prefix=prefix, replicas=3
    )
    client = await Client.connect(temporal_address, plugins=[plugin])
    worker = Worker(client, task_queue=unique("provision"), workflows=[Noop])
    # worker.run(), not `async with`: a worker whose start fails would hang its exit.
    running = asyncio.create_task(worker.run())
    connected = asyncio.create_task(plugin.wait_connected())
    try:
        await asyncio.wait([running, connected], timeout=30, return_when="FIRST_COMPLETED")
        assert connected.done(), running.exception() if running.done() else "no connection"
        assert plugin.publisher is not None
        js = plugin.publisher.nc.jetstream()
        infos = [await js.stream_info(n) for n in (name, snapshot_stream(name))]
    finally:
        connected.cancel()
        await worker.shutdown()
    for info in infos:
        assert info.config.num_replicas == 3
        assert info.cluster is not None and info.cluster.leader
        assert len(info.cluster.replicas or []) == 2


async def test_three_replicas_on_a_single_server_is_a_clear_error(tmp_path) -> None:
    """A single server cannot hold 3 replicas: the error says so and what to do."""
    with NatsServer(store_dir=tmp_path) as server:
        nc = await nats.connect(server.url)
        try:
            with pytest.raises(ConfigurationError, match="needs a JetStream cluster"):
                await provision(nc.jetstream(), SETTINGS)
            streams = await nc.jetstream().streams_info()
        finally:
            await nc.close()
    assert streams == []
