"""Reading survives a NATS restart and resumes from a broker sequence with nothing lost."""

from __future__ import annotations

import asyncio

import nats
import orjson

from mistral_workflows import Gap, StreamEvent, subscribe, subscribe_sync
from mistral_workflows.core import subjects
from mistral_workflows.core.encoding import MSG_ID
from mistral_workflows.core.events import EventType
from mistral_workflows.dev import NatsServer
from mistral_workflows.worker import StreamSettings, provision
from tests.consumer.test_subscribe import lifecycle_event, lifecycle_subject
from tests.support import unique


async def publish(url: str, wid: str, first: int, n: int) -> None:
    """Publish n events of workflow `wid` (ids first..first+n-1), as a worker would."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await provision(js, StreamSettings())
    for i in range(first, first + n):
        body = lifecycle_event(wid, EventType.WORKFLOW_EXECUTION_STARTED)
        body["data"]["event_id"] = f"event-{i}"
        await js.publish(lifecycle_subject(wid), orjson.dumps(body), headers={MSG_ID: f"{wid}-{i}"})
    await nc.close()


def ids(events: list[StreamEvent]) -> list[str]:
    return [e.data.event_id for e in events]


async def test_subscriber_survives_a_nats_restart(tmp_path):
    """kill -9 and restart of nats-server mid-stream: every event once, in order."""
    wid = unique("restart")
    with NatsServer(store_dir=tmp_path) as server:
        await publish(server.url, wid, 0, 20)
        seen: list[StreamEvent] = []
        caught_up = asyncio.Event()

        async def follow() -> None:
            async for event in subscribe(server.url, workflow_exec_id=wid):
                seen.append(event)
                if len(seen) == 20:
                    caught_up.set()
                if len(seen) == 50:
                    return

        follower = asyncio.create_task(follow())
        await asyncio.wait_for(caught_up.wait(), 10)
        server.kill()
        server.restart()
        await publish(server.url, wid, 20, 30)
        await asyncio.wait_for(follower, 30)
    assert ids(seen) == [f"event-{i}" for i in range(50)]
    seqs = [e.broker_sequence for e in seen]
    assert seqs == sorted(set(seqs))


async def test_restarted_consumer_resumes_without_loss_or_repeat(nats_url):
    """A consumer stopped mid-stream and started again at last + 1 sees each event once."""
    wid = unique("resume")
    await publish(nats_url, wid, 0, 40)
    first: list[StreamEvent] = []
    async for event in subscribe(nats_url, workflow_exec_id=wid):
        first.append(event)
        if len(first) == 15:
            break  # the consumer goes away mid-stream
    await publish(nats_url, wid, 40, 10)
    rest = [
        e
        async for e in subscribe(
            nats_url,
            workflow_exec_id=wid,
            start_seq=first[-1].broker_sequence + 1,
            idle_timeout=0.5,
        )
    ]
    assert ids(first + rest) == [f"event-{i}" for i in range(50)]


async def test_gap_notice_after_purge(tmp_path):
    """After old events are purged, resuming from before them is reported, not skipped silently."""
    wid = unique("purged")
    with NatsServer(store_dir=tmp_path) as server:
        await publish(server.url, wid, 0, 10)
        nc = await nats.connect(server.url)
        await nc.jetstream().purge_stream(subjects.DEFAULT_STREAM_NAME, keep=4)
        await nc.close()
        gaps: list[Gap] = []
        events = [
            e
            async for e in subscribe(
                server.url, workflow_exec_id=wid, start_seq=1, idle_timeout=0.5, on_gap=gaps.append
            )
        ]
    assert gaps == [Gap(1, 7)]
    assert ids(events) == [f"event-{i}" for i in range(6, 10)]
    assert "no longer in the stream" in str(gaps[0])


def test_sync_iterator_for_scripts(nats_url):
    """subscribe_sync gives the same events without asyncio."""
    wid = unique("sync")
    asyncio.run(publish(nats_url, wid, 0, 5))
    events = list(subscribe_sync(nats_url, workflow_exec_id=wid, idle_timeout=0.5))
    assert ids(events) == [f"event-{i}" for i in range(5)]
