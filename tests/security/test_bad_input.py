"""Bad input, against real servers: a clear error naming the problem and the fix, nothing
half-done, nothing else broken, and nothing that leaks from one execution to another."""

from __future__ import annotations

import asyncio
import copy
import re
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import nats
import orjson
import pytest
from temporalio import activity, workflow
from temporalio.client import Client

import mistral_workflows as workflows
from mistral_workflows import (
    BrokerConnectionError,
    ConfigurationError,
    PayloadTooLargeError,
    StreamEvent,
)
from mistral_workflows.core import subjects
from mistral_workflows.core.context import current_scope
from mistral_workflows.core.encoding import EXPECTED_STREAM, MSG_ID
from mistral_workflows.core.events import ACTIVITY_EVENT_TYPES, EventType
from mistral_workflows.core.filter import EventFilter
from mistral_workflows.core.task import Task
from tests.support import (
    collect,
    plugged_client,
    rebuilt,
    running_worker,
    task_events,
    types,
    unique,
)
from tests.workflows import Call, RunActivity

MIB = 1024 * 1024
IDLE = 0.5
TIMEOUT = timedelta(seconds=60)
OURS = {MSG_ID, EXPECTED_STREAM}


# --- the workflow and activities under test -------------------------------------------------


@dataclass
class Ids:
    """Run `activity` once per activity id, all at once, with the same arguments."""

    activity_ids: list[str]
    activity: str = "echo_ids"
    args: list[Any] = field(default_factory=list)


@workflow.defn(sandboxed=False)
class RunWithIds:
    """Runs an activity under each given activity id."""

    @workflow.run
    async def run(self, ids: Ids) -> list[Any]:
        calls = (
            workflow.execute_activity(
                ids.activity, args=ids.args, activity_id=aid, start_to_close_timeout=TIMEOUT
            )
            for aid in ids.activity_ids
        )
        return list(await asyncio.gather(*calls))


@workflows.activity()
async def echo_ids() -> dict[str, str]:
    info = activity.info()
    ids = {"workflow_id": info.workflow_id, "activity_id": info.activity_id}
    async with Task(type="ids", state=dict(ids)) as task:
        await task.update_state({"done": "yes"})
    return ids


async def next_turn() -> None:
    """Yield to the event loop, as a producer awaiting its next chunk does: a task folds the
    updates made within one loop turn into one event."""
    await asyncio.sleep(0)


class Opaque:
    """A custom object without a JSON form."""


def _cycle() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


def _deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


# kind: (a fresh bad value, the problem as the message words it, the fix it suggests)
BAD_VALUES: dict[str, tuple[Callable[[], object], str, str]] = {
    "set": (lambda: {1, 2}, "has type set", "sorted(value)"),
    "frozenset": (lambda: frozenset({1}), "has type frozenset", "sorted(value)"),
    "bytes": (lambda: b"raw", "has type bytes", "decode it to str"),
    "bytearray": (lambda: bytearray(b"raw"), "has type bytearray", "decode it to str"),
    "datetime": (lambda: datetime(2026, 5, 4, tzinfo=UTC), "datetime.datetime", "isoformat()"),
    "date": (lambda: date(2026, 5, 4), "has type datetime.date", "isoformat()"),
    "decimal": (lambda: Decimal("1.10"), "has type decimal.Decimal", "convert it to str"),
    "nan": (lambda: float("nan"), "is nan, which is not valid JSON", "use None or a string"),
    "inf": (lambda: float("inf"), "is inf, which is not valid JSON", "use None or a string"),
    "-inf": (lambda: float("-inf"), "is -inf", "use None or a string"),
    "cycle": (_cycle, "reference cycle", "break the cycle"),
    "10,000 levels": (lambda: _deep(10_000), "nested deeper than 64 levels", "flatten"),
    "int key": (lambda: {1: "a"}, "non-str key 1 (int)", "convert the key with str()"),
    "tuple key": (lambda: {(1, 2): "a"}, "non-str key (1, 2) (tuple)", "with str()"),
    "custom object": (Opaque, "Opaque, which is not JSON", "model_dump(mode='json')"),
    "complex": (lambda: 1j, "has type complex", "model_dump(mode='json')"),
}
# Where the bad value goes, and the JSON pointer the message must name.
PLACES = {
    "initial state": "/bad/inner/1",
    "update_state, new key": "/bad/inner/1",
    "update_state, existing key": "/nested/inner/1",
    "set_state": "/bad/inner/1",
}
GOOD_STATE = {"n": 0, "nested": {"inner": [0, 1]}}


async def _attempt(task: Task[Any], place: str, value: object) -> dict[str, Any]:
    """Try one bad call; report the error and whether the task's state stayed as it was."""
    before, same = copy.deepcopy(task.state), task.state
    try:
        if place == "initial state":
            Task(type=f"{task.type}-initial", state={"ok": 1, "bad": {"inner": [0, value]}})
        elif place == "update_state, new key":
            await task.update_state({"bad": {"inner": [0, value]}})
        elif place == "update_state, existing key":
            await task.update_state({"nested": {"inner": [0, value]}})
        else:
            await task.set_state({**copy.deepcopy(before), "bad": {"inner": [0, value]}})
    except Exception as e:
        error: str | None = f"{type(e).__name__}: {e}"
    else:
        error = None
    return {"error": error, "unchanged": task.state is same and task.state == before}


@workflows.activity()
async def refuses_bad_state() -> list[dict[str, Any]]:
    records = []
    async with (
        Task(type="bad-state", state=copy.deepcopy(GOOD_STATE)) as task,
        Task(type="control", state=copy.deepcopy(GOOD_STATE)) as control,
        Task(type="bystander", state={"step": 0}) as bystander,
    ):
        step = 0
        for kind, (make, _, _) in BAD_VALUES.items():
            for place in PLACES:
                await next_turn()
                step += 1
                records.append(
                    {"kind": kind, "place": place, **await _attempt(task, place, make())}
                )
                # Negative control: the same call with a JSON value is published.
                await _attempt(control, place, f"fine-{step}")
                await task.update_state({"n": step})
                await control.update_state({"n": step})
                await bystander.update_state({"step": step})
        await next_turn()
        top_level = await _attempt_top_level_key(task)
        await task.update_state({"n": step + 1})
    return [*records, top_level]


async def _attempt_top_level_key(task: Task[Any]) -> dict[str, Any]:
    before = copy.deepcopy(task.state)
    try:
        await task.update_state({1: "x"})
    except Exception as e:
        return {"kind": "top-level int key", "error": f"{type(e).__name__}: {e}"}
    return {"kind": "top-level int key", "error": None, "unchanged": task.state == before}


STEPS = 12


@workflows.activity()
async def oversized_beside_steady() -> dict[str, Any]:
    nc = current_scope().emitter.publisher.nc
    reconnects = nc.stats["reconnects"]
    refused: list[str] = []
    async with (
        Task(type="oversized", state={"text": "", "n": 0}) as big,
        Task(type="steady", state={"i": 0}) as steady,
    ):
        for i in range(1, STEPS + 1):
            await next_turn()
            await steady.update_state({"i": i})
            try:
                if i % 3 == 1:  # one event over the limit
                    await big.update_state({"blob": "x" * (2 * MIB)})
                elif i % 3 == 2:  # each patch is small, but the state outgrows one event
                    await big.update_state({"text": big.state["text"] + "y" * (300 * 1024)})
                else:
                    await big.set_state({"text": "z" * (2 * MIB), "n": i})
            except PayloadTooLargeError as e:
                refused.append(str(e))
            await big.update_state({"n": i})
        final = copy.deepcopy(big.state)
    return {
        "refused": refused,
        "final": final,
        "connected": nc.is_connected,
        "reconnects": nc.stats["reconnects"] - reconnects,
    }


@workflows.activity()
async def fills_the_state_to_the_limit() -> int:
    async with Task(type="brimful", state={"text": ""}) as task:
        chunk = 64 * 1024
        while chunk:  # append ever smaller chunks until not one more character fits
            try:
                await task.update_state({"text": task.state["text"] + "f" * chunk})
            except PayloadTooLargeError:
                chunk //= 2
    return len(task.state["text"])


BAD_TYPES: list[object] = [
    "",
    "x" * 65,
    "a.b",
    ">",
    "*",
    "a b",
    "tab\t",
    "line\n",
    "_x",
    subjects.LIFECYCLE_STREAM,
    "tokén",
    "$JS.API",
    5,
    None,
    b"token-stream",
]


@workflows.activity()
async def bad_type_names() -> list[str]:
    messages = []
    for name in BAD_TYPES:
        try:
            Task(type=name, state={"n": 0})
        except ConfigurationError as e:
            messages.append(f"ConfigurationError: {e}")
        except Exception as e:
            messages.append(f"{type(e).__name__}: {e}")
        else:
            messages.append("accepted")
    async with Task(type="after-bad-types", state={"n": 0}) as task:
        await task.update_state({"n": 1})
    return messages


@workflows.activity()
async def custom_task_ids(ids: list[str], per_activity: bool = False) -> list[str]:
    if per_activity:  # custom ids are global: keep those of each activity apart
        ids = [f"{activity.info().activity_id}/{task_id}" for task_id in ids]
    for task_id in ids:
        async with Task(type="custom-id", state={"id": task_id}, id=task_id) as task:
            await task.update_state({"done": "yes"})
    return ids


ACTIVITIES = [
    echo_ids,
    refuses_bad_state,
    oversized_beside_steady,
    fills_the_state_to_the_limit,
    bad_type_names,
    custom_task_ids,
]


# --- fixtures and helpers -----------------------------------------------------------------


@dataclass
class Plugged:
    client: Client
    task_queue: str


@pytest.fixture(scope="module")
async def plugged(temporal_address: str, nats_url: str) -> AsyncIterator[Plugged]:
    """One plugged worker running every workflow and activity of this module."""
    client = await plugged_client(temporal_address, nats_url)
    queue = unique("bad-input")
    async with running_worker(client, queue, [RunActivity, RunWithIds], ACTIVITIES):
        yield Plugged(client, queue)


async def run_activity(plugged: Plugged, name: str, *args: Any) -> tuple[str, Any]:
    """Run one activity in its own workflow; return the workflow id and the result."""
    wid = unique(name)
    result = await plugged.client.execute_workflow(
        RunActivity.run, Call(name, list(args)), id=wid, task_queue=plugged.task_queue
    )
    return wid, result


async def run_with_ids(plugged: Plugged, wid: str, ids: Ids) -> str:
    """Run `RunWithIds` under workflow id `wid`; return the run id."""
    handle = await plugged.client.start_workflow(
        RunWithIds.run, ids, id=wid, task_queue=plugged.task_queue
    )
    await handle.result()
    assert handle.result_run_id is not None
    return handle.result_run_id


@dataclass
class Stored:
    """A message as JetStream stored it."""

    subject: str
    headers: dict[str, str]
    body: dict[str, Any]


async def stored(nats_url: str, filter_subject: str) -> list[Stored]:
    """Every stored message on `filter_subject`, headers included, read with plain nats-py."""
    nc = await nats.connect(nats_url)
    sub = await nc.jetstream().subscribe(filter_subject, ordered_consumer=True)
    out = []
    try:
        while True:
            msg = await sub.next_msg(timeout=IDLE)
            body = orjson.loads(msg.data) if msg.data.startswith(b"{") else {}
            out.append(Stored(msg.subject, dict(msg.headers or {}), body))
    except TimeoutError:
        pass
    finally:
        await nc.close()
    return out


def of_stream(events: list[StreamEvent], stream: str) -> list[StreamEvent]:
    return [e for e in events if e.stream == stream]


def patches(events: list[StreamEvent]) -> list[Any]:
    return [e.data.attributes.payload.value for e in events[1:-1]]


def assert_only_steps(events: list[StreamEvent], key: str, steps: int) -> None:
    """STARTED, one `replace /key` per step (1..steps) and nothing else, then COMPLETED."""
    assert types(events) == (
        [EventType.CUSTOM_TASK_STARTED]
        + [EventType.CUSTOM_TASK_IN_PROGRESS] * steps
        + [EventType.CUSTOM_TASK_COMPLETED]
    )
    expected = [[{"op": "replace", "path": f"/{key}", "value": i}] for i in range(1, steps + 1)]
    assert patches(events) == expected
    assert [e.data.attributes.task_sequence for e in events] == list(range(steps + 2))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- 1. non-JSON state ----------------------------------------------------------------------


@pytest.fixture(scope="module")
async def bad_state_run(plugged: Plugged, nats_url: str) -> tuple[list[dict], list[StreamEvent]]:
    wid, records = await run_activity(plugged, "refuses_bad_state")
    return records, await task_events(nats_url, workflow_exec_id=wid)


CASES = [(kind, place) for kind in BAD_VALUES for place in PLACES]


@pytest.mark.parametrize(("kind", "place"), CASES, ids=[f"{k} in {p}" for k, p in CASES])
async def test_non_json_state_is_refused_naming_path_and_fix(bad_state_run, kind, place):
    """Each non-JSON value, wherever it is given, raises InvalidStateError naming where it
    is and what to do, and leaves the task's state as it was."""
    records, _ = bad_state_run
    (record,) = [r for r in records if r.get("place") == place and r["kind"] == kind]
    _, problem, fix = BAD_VALUES[kind]
    error = record["error"]
    assert error is not None and error.startswith("InvalidStateError: task state at ")
    assert f"at '{PLACES[place]}" in error and problem in error and fix in error
    assert len(error) < 600  # a 10,000-level or cyclic value is not echoed
    assert record["unchanged"]


async def test_refused_updates_publish_nothing_and_later_updates_work(bad_state_run):
    """The bad task's events are exactly its good updates: no bad update was published,
    each good update after one still was, and the final state is the last good one."""
    _, events = bad_state_run
    mine = of_stream(events, "bad-state")
    steps = len(CASES) + 1  # one good update after each refused call, one after the last
    assert_only_steps(mine, "n", steps)
    (task,) = rebuilt(mine)
    assert task.state == {**GOOD_STATE, "n": steps} and task.status == "completed"


async def test_negative_control_json_values_in_the_same_calls_are_published(bad_state_run):
    """The same calls with JSON values publish events, and the check above sees them."""
    _, events = bad_state_run
    control = of_stream(events, "control")
    assert len(control) > len(CASES) + 2
    with pytest.raises(AssertionError):
        assert_only_steps(control, "n", len(CASES))


async def test_other_tasks_of_the_activity_are_unaffected(bad_state_run):
    """A task updated between the refused calls streams every one of its updates."""
    _, events = bad_state_run
    assert_only_steps(of_stream(events, "bystander"), "step", len(CASES))


async def test_refused_initial_state_publishes_nothing(bad_state_run):
    """A Task refused at construction sends nothing: only the three entered tasks stream."""
    _, events = bad_state_run
    assert Counter(e.stream for e in events).keys() == {"bad-state", "control", "bystander"}


async def test_non_str_top_level_key_names_path_and_fix(bad_state_run):
    """update_state({1: ...}) names the root and says to convert the key with str()."""
    records, _ = bad_state_run
    error = records[-1]["error"]
    assert error.startswith("InvalidStateError: task state at ") and "str()" in error


# --- 2. events over the size limit ----------------------------------------------------------


@pytest.fixture(scope="module")
async def oversized_run(plugged: Plugged, nats_url: str) -> tuple[dict, list[StreamEvent]]:
    wid, outcome = await run_activity(plugged, "oversized_beside_steady")
    return outcome, await task_events(nats_url, workflow_exec_id=wid)


async def test_oversized_updates_are_refused_and_change_nothing(oversized_run):
    """Events over the limit and a state outgrowing it are refused with the advice to store
    the data elsewhere; the task goes on and rebuilds to what the activity last had."""
    outcome, events = oversized_run
    assert len(outcome["refused"]) >= STEPS // 3 * 2
    assert all("Store large data elsewhere" in m for m in outcome["refused"])
    outgrown = [m for m in outcome["refused"] if "would outgrow one event" in m]
    assert outgrown
    for message in outgrown:
        # The size shown is the whole event's, which is what the limit applies to.
        shown = int(re.search(r"would take up to (\d+) bytes", message)[1])
        limit = int(re.search(r"the (\d+)-byte event limit", message)[1])
        assert shown >= limit, message
    (task,) = rebuilt(of_stream(events, "oversized"))
    assert task.state == outcome["final"] and task.status == "completed"
    assert len(outcome["final"]["text"]) == 3 * 300 * 1024


async def test_other_task_keeps_streaming_beside_oversized_updates(oversized_run):
    """The other task of the activity streams all its updates; the connection stayed up."""
    outcome, events = oversized_run
    assert_only_steps(of_stream(events, "steady"), "i", STEPS)
    assert outcome["connected"] and outcome["reconnects"] == 0


async def test_negative_control_a_lost_update_is_detected(oversized_run):
    """Without one of its events the steady task fails the check above."""
    _, events = oversized_run
    steady = of_stream(events, "steady")
    with pytest.raises(AssertionError):
        assert_only_steps(steady[:3] + steady[4:], "i", STEPS)


async def test_a_state_accepted_at_the_limit_can_still_complete(plugged, nats_url):
    """Growing the state until refused still leaves room for the COMPLETED event."""
    wid, result = await run_activity(plugged, "fills_the_state_to_the_limit")
    events = await task_events(nats_url, workflow_exec_id=wid)
    assert isinstance(result, int) and result > MIB - 4096
    assert types(events)[-1] == EventType.CUSTOM_TASK_COMPLETED


# --- 3. hostile workflow and activity ids ---------------------------------------------------

HOSTILE_IDS = [
    "a.b.c",
    "tenantB.>",
    "tenantB.x",
    "tenantB",
    "*",
    ">",
    "with spaces in it",
    "line\nbreak",
    "tab\tseparated",
    "$JS.API.x",
    "z" * 1000,
    "日本語 🙂 émoji",
    " ",
    "\u200b",
]
_NAMES = [repr(i) if len(i) < 30 else f"{len(i)} characters" for i in HOSTILE_IDS]


@pytest.fixture(scope="module")
async def hostile_runs(plugged: Plugged, nats_url: str) -> dict[str, tuple[str, list]]:
    """Every hostile id as a workflow id, all running side by side: id -> (run id, events)."""
    runs = await asyncio.gather(*(run_with_ids(plugged, wid, Ids(["step"])) for wid in HOSTILE_IDS))
    events = await asyncio.gather(*(collect(nats_url, workflow_exec_id=wid) for wid in HOSTILE_IDS))
    return dict(zip(HOSTILE_IDS, zip(runs, events, strict=True), strict=True))


EXPECTED_KINDS = Counter(
    {
        EventType.WORKFLOW_EXECUTION_STARTED: 1,
        EventType.ACTIVITY_TASK_STARTED: 1,
        EventType.CUSTOM_TASK_STARTED: 1,
        EventType.CUSTOM_TASK_IN_PROGRESS: 1,
        EventType.CUSTOM_TASK_COMPLETED: 1,
        EventType.ACTIVITY_TASK_COMPLETED: 1,
        EventType.WORKFLOW_EXECUTION_COMPLETED: 1,
    }
)


@pytest.mark.parametrize("wid", HOSTILE_IDS, ids=_NAMES)
async def test_hostile_workflow_id_streams_with_the_exact_id(hostile_runs, wid):
    """A run under a hostile workflow id streams all its events, carrying the id as is."""
    run_id, events = hostile_runs[wid]
    mine = [e for e in events if e.data.workflow_run_id == run_id]
    assert Counter(types(mine)) == EXPECTED_KINDS
    for event in mine:
        assert event.data.workflow_exec_id == wid and event.data.root_workflow_exec_id == wid
        assert event.workflow_context.workflow_exec_id == wid
    (task,) = rebuilt(mine)
    assert task.state == {"workflow_id": wid, "activity_id": "step", "done": "yes"}


@pytest.mark.parametrize("wid", HOSTILE_IDS, ids=_NAMES)
async def test_filter_on_a_hostile_workflow_id_gets_no_other_execution(hostile_runs, wid):
    """A consumer filtering on one hostile id receives no event of the runs beside it
    (`tenantB.>` gets nothing of `tenantB.x` or `tenantB`, `*` nothing of anyone)."""
    _, events = hostile_runs[wid]
    assert events and {e.data.workflow_exec_id for e in events} == {wid}


async def test_negative_control_unencoded_or_wildcard_filters_do_mix_executions(
    hostile_runs, nats_url
):
    """The checks above would see a leak: a filter with the raw id `tenantB.>` in it, or a
    real wildcard, matches the events of several of these executions."""
    # What putting the id in the subject as is gives:
    raw = f"{subjects.DEFAULT_PREFIX}.*.*.*.*.*.tenantB.>"
    leaked = {m.body["data"]["workflow_exec_id"] for m in await stored(nats_url, raw)}
    assert "tenantB" in leaked and leaked != {"tenantB.>"}
    wildcard = EventFilter(workflow_name="RunWithIds", stream="ids").subject(
        subjects.DEFAULT_PREFIX
    )
    several = {m.body["data"]["workflow_exec_id"] for m in await stored(nats_url, wildcard)}
    assert set(HOSTILE_IDS) <= several


@pytest.fixture(scope="module")
async def hostile_activity_ids(plugged: Plugged, nats_url: str) -> tuple[str, list[list]]:
    """One run with an activity under each hostile id: (workflow id, messages per activity)."""
    wid = unique("activity-ids")
    await run_with_ids(plugged, wid, Ids(HOSTILE_IDS))
    per_activity = await asyncio.gather(
        *(
            stored(
                nats_url,
                EventFilter(workflow_exec_id=wid, activity_id=aid).subject(subjects.DEFAULT_PREFIX),
            )
            for aid in HOSTILE_IDS
        )
    )
    return wid, per_activity


@pytest.mark.parametrize("index", range(len(HOSTILE_IDS)), ids=_NAMES)
async def test_filter_on_a_hostile_activity_id_gets_that_activity_only(hostile_activity_ids, index):
    """Filtering on one hostile activity id gives that activity's events, carrying the id,
    and none of the activities beside it in the same run."""
    _, per_activity = hostile_activity_ids
    aid, messages = HOSTILE_IDS[index], per_activity[index]
    kinds = Counter(m.body["data"]["event_type"] for m in messages)
    assert kinds == EXPECTED_KINDS - Counter(
        {EventType.WORKFLOW_EXECUTION_STARTED: 1, EventType.WORKFLOW_EXECUTION_COMPLETED: 1}
    )
    assert {m.body["activity_context"]["activity_id"] for m in messages} == {aid}
    lifecycle = [m for m in messages if m.body["data"]["event_type"] in ACTIVITY_EVENT_TYPES]
    assert {m.body["data"]["attributes"]["task_id"] for m in lifecycle} == {aid}


async def test_negative_control_activity_wildcard_matches_every_activity(
    hostile_activity_ids, nats_url
):
    """An activity filter with a wildcard id does match every activity of the run."""
    wid, _ = hostile_activity_ids
    every = await stored(
        nats_url,
        EventFilter(workflow_exec_id=wid, scope="activity").subject(subjects.DEFAULT_PREFIX),
    )
    assert {m.body["activity_context"]["activity_id"] for m in every} == set(HOSTILE_IDS)


# --- 4. illegal type names and subscribe filters -------------------------------------------


@pytest.fixture(scope="module")
async def bad_types_run(plugged: Plugged, nats_url: str) -> tuple[list[str], list[StreamEvent]]:
    wid, messages = await run_activity(plugged, "bad_type_names")
    return messages, await task_events(nats_url, workflow_exec_id=wid)


@pytest.mark.parametrize("index", range(len(BAD_TYPES)), ids=[repr(t)[:20] for t in BAD_TYPES])
async def test_illegal_type_name_is_refused_with_the_rule(bad_types_run, index):
    """Task(type=...) with an illegal name raises ConfigurationError naming it and the rule."""
    messages, _ = bad_types_run
    message = messages[index]
    assert message.startswith("ConfigurationError: invalid stream type ")
    assert repr(BAD_TYPES[index])[:40] in message
    assert "1-64 characters from A-Z a-z 0-9 _ -" in message and '"token-stream"' in message


async def test_illegal_type_names_publish_nothing(bad_types_run):
    """Only the valid task that follows the refused ones streams (the read finds it)."""
    _, events = bad_types_run
    assert [e.stream for e in events] == ["after-bad-types"] * 3


BAD_FILTERS = [
    ({"stream": ""}, "invalid stream type"),
    ({"stream": "a.b"}, "invalid stream type"),
    ({"stream": ">"}, "invalid stream type"),
    ({"stream": "*"}, "invalid stream type"),
    ({"stream": "_private"}, "invalid stream type"),
    ({"stream": 5}, "invalid stream type"),
    ({"subject_prefix": "workflows.>"}, "invalid subject prefix"),
    ({"subject_prefix": "*"}, "invalid subject prefix"),
    ({"subject_prefix": ""}, "invalid subject prefix"),
    ({"scope": "everything"}, "scope must be"),
    ({"start_seq": "1"}, "start_seq"),
    ({"start_seq": -1}, "start_seq"),
    ({"workflow_exec_id": 5}, "exec_id filter must be a str"),
    ({"root_workflow_exec_id": b"root"}, "root_workflow_exec_id filter must be a str"),
    ({"namespace": ["default"]}, "namespace filter must be a str"),
    ({"activity_name": 7}, "activity_name filter must be a str"),
    ({"late_join": True, "from_now": True}, "at most one of"),
]


@pytest.fixture(scope="module")
def dead_url() -> str:
    """A NATS URL nobody listens on: reaching it would fail with BrokerConnectionError."""
    return f"nats://127.0.0.1:{free_port()}"


@pytest.mark.parametrize(("options", "words"), BAD_FILTERS, ids=[str(o) for o, _ in BAD_FILTERS])
async def test_illegal_filter_is_refused_before_connecting(dead_url, options, words):
    """subscribe() with an illegal filter raises ConfigurationError saying what is wrong,
    before it connects (the URL is dead, so connecting would fail differently)."""
    with pytest.raises(ConfigurationError, match=words):
        await collect(dead_url, **options)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"start_seq": True}, id="start_seq=True"),
        pytest.param(
            {"stream_name": f"{subjects.DEFAULT_STREAM_NAME}.x"}, id="stream_name with a dot"
        ),
        pytest.param({"stream_name": "*"}, id="stream_name *"),
    ],
)
async def test_unchecked_subscribe_options_are_refused_before_connecting(dead_url, options):
    """A stream name that is not a stream name, or a bool start_seq, is refused up front."""
    with pytest.raises(ConfigurationError):
        await collect(dead_url, **options)


async def test_negative_control_valid_filters_do_connect(dead_url):
    """With valid filters subscribe() does try the dead URL, so the tests above would
    notice a check made after connecting."""
    with pytest.raises(BrokerConnectionError):
        await collect(dead_url, workflow_exec_id="tenantB.>", stream="token-stream")


# --- 5. header injection --------------------------------------------------------------------

INJECTIONS = [
    f"\r\n{MSG_ID}: injected",
    f"\r\n{EXPECTED_STREAM}: OTHER",
    "\r\n\r\n{}",
    f"\n{MSG_ID}: injected\n",
    f"{MSG_ID}: injected",
]


def foreign_headers(message: Stored) -> dict[str, str]:
    """The headers of a stored message that are not ours, or not as we set them."""
    extra = {k: v for k, v in message.headers.items() if k not in OURS}
    if message.headers.get(EXPECTED_STREAM) != subjects.DEFAULT_STREAM_NAME:
        extra[EXPECTED_STREAM] = str(message.headers.get(EXPECTED_STREAM))
    return extra


@pytest.fixture(scope="module")
async def injection_run(plugged: Plugged, nats_url: str) -> tuple[str, list[str], list[Stored]]:
    """Injection attempts in the workflow id, the activity id and custom task ids."""
    wid = unique("inject") + INJECTIONS[0] + INJECTIONS[1]
    tag = uuid.uuid4().hex[:8]
    task_ids = [f"{tag}{i}{injection}" for i, injection in enumerate(INJECTIONS)]
    activity_ids = [f"act{injection}" for injection in INJECTIONS[:2]]
    await run_with_ids(plugged, wid, Ids(activity_ids, "custom_task_ids", [task_ids, True]))
    messages = await stored(
        nats_url, EventFilter(workflow_exec_id=wid).subject(subjects.DEFAULT_PREFIX)
    )
    return wid, [f"{a}/{t}" for a in activity_ids for t in task_ids], messages


async def test_injected_ids_add_or_alter_no_header(injection_run):
    """CR/LF and header lines in ids add no header and leave ours as set; ids stay exact."""
    wid, task_ids, messages = injection_run
    assert len(messages) == 2 + 2 * 2 + 3 * len(task_ids)
    assert [foreign_headers(m) for m in messages] == [{}] * len(messages)
    assert all(m.headers[MSG_ID] for m in messages)
    assert {m.body["data"]["workflow_exec_id"] for m in messages} == {wid}
    custom = {m.body["data"]["attributes"].get("custom_task_id") for m in messages}
    assert set(task_ids) <= custom


async def test_negative_control_an_added_header_is_seen(nats_url):
    """A message published with an extra header fails the check above."""
    subject = subjects.event_subject(
        subjects.DEFAULT_PREFIX,
        namespace="default",
        stream="header-control",
        workflow_name="W",
        root_exec_id="r",
        parent_exec_id=None,
        exec_id=unique("header-control"),
    )
    nc = await nats.connect(nats_url)
    headers = {MSG_ID: unique("m"), "X-Injected": "1"}
    await nc.jetstream().publish(subject, b"{}", headers=headers)
    await nc.close()
    (message,) = await stored(nats_url, subject)
    assert foreign_headers(message) == {"X-Injected": "1", EXPECTED_STREAM: "None"}


async def test_message_id_is_the_event_id(injection_run):
    """Each stored message's Nats-Msg-Id is exactly its event's event_id."""
    _, _, messages = injection_run
    mismatched = [m for m in messages if m.headers[MSG_ID] != m.body["data"]["event_id"]]
    assert mismatched == []


async def custom_id_events(plugged: Plugged, nats_url: str, *id_lists: list[str]) -> int:
    """Run `custom_task_ids` once per list, side by side; count the task events stored."""
    wids = [unique("custom-ids") for _ in id_lists]
    await asyncio.gather(
        *(
            run_with_ids(plugged, wid, Ids(["1"], "custom_task_ids", [ids]))
            for wid, ids in zip(wids, id_lists, strict=True)
        )
    )
    counts = await asyncio.gather(*(task_events(nats_url, workflow_exec_id=w) for w in wids))
    return sum(len(c) for c in counts)


async def test_ids_differing_in_whitespace_are_not_deduplicated(plugged, nats_url):
    """Tasks whose ids differ only in CR/LF or surrounding whitespace all stream in full."""
    tag = unique("ws")
    ids = [f"{tag}\r\nx", f"{tag}  x", f"{tag}\nx ", f" {tag}\nx "]
    assert await custom_id_events(plugged, nats_url, ids) == 3 * len(ids)


async def test_same_custom_id_in_two_executions_is_not_deduplicated(plugged, nats_url):
    """Two workflows that each name their task `summary-<tag>` both stream it in full."""
    same = [unique("summary")]
    assert await custom_id_events(plugged, nats_url, same, same) == 2 * 3


async def test_negative_control_the_same_id_twice_is_deduplicated(plugged, nats_url):
    """Two tasks with one id in one activity: the copies are dropped, and the count sees it."""
    same = unique("twice")
    assert await custom_id_events(plugged, nats_url, [same, same]) == 3
