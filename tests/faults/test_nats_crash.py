"""nats-server killed with SIGKILL and restarted on the same store, exactly while a task's
event is in flight: JetStream has stored it, its acknowledgement has not reached the worker.

The worker talks to NATS through a relay whose server-to-worker direction the test can
hold, so the moment is exact rather than a matter of luck: the activity calls a hook just
before the event (hold the acknowledgements) and just after it (wait until the event is
stored, kill the server, drop the held acknowledgements, restart, let traffic through).
The worker then re-sends the event it never saw acknowledged, with its message id.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import nats
import nats.js.errors
import orjson
import pytest
from temporalio import activity

import mistral_workflows as workflows
from mistral_workflows import StreamEvent
from mistral_workflows.core import encoding, subjects
from mistral_workflows.core.events import EventType
from mistral_workflows.core.task import Task
from mistral_workflows.dev import NatsServer
from tests.faults.worker_process import (
    Plan,
    RunPlan,
    check_attempt,
    duplicate_ids,
    kinds,
    tokens,
)
from tests.support import collect, plugged_client, rebuilt, running_worker, unique

UPDATES = 5
Hook = Callable[[str, str], Awaitable[None]]
HOOK: list[Hook] = []


@workflows.activity()
async def stream_around_hooks(updates: int) -> str:
    """Streams `updates` tokens, calling the test's hook around the task's STARTED event,
    its middle update and its COMPLETED event."""
    hook = HOOK[0]
    await hook("before", EventType.CUSTOM_TASK_STARTED)
    async with Task(type="tokens", state={"tokens": []}) as task:
        await hook("after", EventType.CUSTOM_TASK_STARTED)
        for i in range(updates):
            middle = i == updates // 2
            if middle:
                await hook("before", EventType.CUSTOM_TASK_IN_PROGRESS)
            await task.update_state({"tokens": [*task.state["tokens"], f"1-{i}"]})
            if middle:
                await hook("after", EventType.CUSTOM_TASK_IN_PROGRESS)
            else:  # after each hook, the next event goes out at once, as tokens do
                await asyncio.sleep(0.01)
        await hook("before", EventType.CUSTOM_TASK_COMPLETED)
    await hook("after", EventType.CUSTOM_TASK_COMPLETED)
    return f"attempt {activity.info().attempt}"


class AckRelay:
    """A TCP relay to nats-server whose server-to-client direction can be held.

    While held, what the client sends still reaches the server (so JetStream stores the
    events), but the server's replies (the acknowledgements) wait in the relay.
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream = upstream_port
        self._open = asyncio.Event()
        self._open.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"nats://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> AckRelay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.drop()
        self._open.set()
        assert self._server is not None
        self._server.close()

    def hold(self) -> None:
        """Keep the server's replies from the clients."""
        self._open.clear()

    def release(self) -> None:
        """Let the server's replies through again."""
        self._open.set()

    def drop(self) -> None:
        """Close every relayed connection; replies held for them are lost."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pump(reader, up_writer, gated=False), self._pump(up_reader, writer, gated=True)
        )

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, gated: bool
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                if gated:
                    await self._open.wait()
                if sink.transport.is_closing():
                    break
                sink.write(data)
                await sink.drain()
        sink.transport.abort()


async def stored(url: str) -> dict[int, bytes]:
    """Every message of the stream, by sequence, read straight from the server."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        state = (await js.stream_info(subjects.DEFAULT_STREAM_NAME)).state
        messages = {}
        for seq in range(state.first_seq, state.last_seq + 1):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                messages[seq] = (await js.get_msg(subjects.DEFAULT_STREAM_NAME, seq)).data
        return messages
    finally:
        await nc.close()


async def last_event(url: str) -> tuple[int, str | None]:
    """The stream's last sequence and the type of the event stored there."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        last = (await js.stream_info(subjects.DEFAULT_STREAM_NAME)).state.last_seq
        if not last:
            return 0, None
        return last, orjson.loads((await js.get_msg(subjects.DEFAULT_STREAM_NAME, last)).data)[
            "data"
        ]["event_type"]
    finally:
        await nc.close()


class Crash:
    """The hook: hold the acknowledgements before `event`, and once `event` is stored,
    kill the server, drop the held acknowledgements, restart it and let traffic through."""

    def __init__(self, server: NatsServer, relay: AckRelay, event: str) -> None:
        self.server, self.relay, self.event = server, relay, event
        self.before_kill: dict[int, bytes] = {}
        self.crashed = False
        self._mark = 0

    async def __call__(self, when: str, event: str) -> None:
        if self.crashed or event != self.event:
            return
        if when == "before":
            self._mark, _ = await last_event(self.server.url)
            self.relay.hold()
            return
        for _ in range(200):
            last, kind = await last_event(self.server.url)
            if last > self._mark and kind == self.event:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError(f"{self.event} was never stored")
        self.before_kill = await stored(self.server.url)
        self.server.kill()
        self.relay.drop()
        self.server.restart()
        self.relay.release()
        self.crashed = True


@dataclass
class Outcome:
    """What a consumer reads once the activity has come through the crash."""

    result: str
    events: list[StreamEvent]
    lost: set[int]
    """Sequences stored before the crash that are gone or changed after it."""


async def run_crash(temporal_address: str, store: Path, event: str) -> Outcome:
    """Run the activity with the server crashing while `event` is unacknowledged."""
    with NatsServer(store_dir=store) as server:
        async with AckRelay(server.port) as relay:
            crash = Crash(server, relay, event)
            HOOK[:] = [crash]
            client = await plugged_client(temporal_address, relay.url)
            wid, queue = unique("crash"), unique("queue")
            plan = Plan("stream_around_hooks", queue, [UPDATES])
            async with running_worker(client, queue, [RunPlan], [stream_around_hooks]):
                result = await asyncio.wait_for(
                    client.execute_workflow(RunPlan.run, plan, id=wid, task_queue=queue), 60
                )
        assert crash.crashed
        after = await stored(server.url)
        events = await collect(server.url, workflow_exec_id=wid)
    lost = {seq for seq, data in crash.before_kill.items() if after.get(seq) != data}
    return Outcome(result, events, lost)


@pytest.fixture(
    scope="module",
    params=[
        EventType.CUSTOM_TASK_STARTED,
        EventType.CUSTOM_TASK_IN_PROGRESS,
        EventType.CUSTOM_TASK_COMPLETED,
    ],
)
async def crashed(request, temporal_address, tmp_path_factory) -> Outcome:
    """The server crashed while the task's STARTED, middle update or COMPLETED event was
    stored but not acknowledged."""
    return await run_crash(temporal_address, tmp_path_factory.mktemp("nats"), request.param)


def attempt_events(events: list[StreamEvent]) -> Counter[tuple[str, int | None]]:
    """How many times each (type, task sequence) of the attempt is there, in any order."""
    return Counter(
        (e.data.event_type, getattr(e.data.attributes, "task_sequence", None))
        for e in events
        if e.activity_context is not None
    )


EXPECTED = Counter(
    [
        (EventType.ACTIVITY_TASK_STARTED, None),
        (EventType.CUSTOM_TASK_STARTED, 0),
        *[(EventType.CUSTOM_TASK_IN_PROGRESS, i) for i in range(1, UPDATES + 1)],
        (EventType.CUSTOM_TASK_COMPLETED, UPDATES + 1),
        (EventType.ACTIVITY_TASK_COMPLETED, None),
    ]
)


async def test_server_crash_loses_and_repeats_nothing(crashed):
    """Every event stored before the crash is still there; the unacknowledged one, re-sent,
    is there once, like every other; the activity completes in its first attempt and
    consumers rebuild its state."""
    assert crashed.lost == set()
    assert crashed.result == "attempt 1"
    assert duplicate_ids(crashed.events) == []
    assert attempt_events(crashed.events) == EXPECTED
    assert kinds(crashed.events)[-1] == EventType.WORKFLOW_EXECUTION_COMPLETED
    (task,) = rebuilt(crashed.events)
    assert (task.attempt, task.status, task.state) == (1, "completed", tokens(1, UPDATES))


async def test_server_crash_keeps_call_order(crashed):
    """The attempt's events are stored in the order they were sent: those lost with the
    dead connection are sent again, in order, before any newer one."""
    assert check_attempt(
        crashed.events, 1, [EventType.CUSTOM_TASK_COMPLETED, EventType.ACTIVITY_TASK_COMPLETED]
    ) == tokens(1, UPDATES)


async def test_negative_control_without_message_ids_the_resent_event_is_stored_twice(
    temporal_address, tmp_path, monkeypatch
):
    """With the message id header renamed, the re-sent STARTED is stored again, and the
    checks above see it."""
    monkeypatch.setattr(encoding, "MSG_ID", "X-Not-A-Msg-Id")
    outcome = await run_crash(temporal_address, tmp_path, EventType.CUSTOM_TASK_STARTED)
    assert outcome.result == "attempt 1"
    assert kinds(outcome.events, 1).count(EventType.CUSTOM_TASK_STARTED) == 2
    assert duplicate_ids(outcome.events) != []
    assert attempt_events(outcome.events) != EXPECTED
