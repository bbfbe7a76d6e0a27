"""Task inside real activities: every state change reaches JetStream, exactly."""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import orjson
import pytest
from pydantic import BaseModel
from temporalio import activity

import mistral_workflows as workflows
from mistral_workflows import (
    ConfigurationError,
    InvalidStateError,
    NotInPluggedActivityError,
    PayloadTooLargeError,
)
from mistral_workflows.core.events import EventType
from mistral_workflows.core.task import Task
from tests.support import (
    collect,
    plugged_client,
    rebuilt,
    run_call,
    running_worker,
    types,
    unique,
)
from tests.workflows import Call, RunActivity

TOKENS = 2000


@workflows.activity()
async def many_tokens(n: int, paced: bool = False) -> dict[str, object]:
    """Stream n tokens; `paced` yields to the event loop after each, as an LLM client
    awaiting its next chunk does (else the updates of one loop turn share an event)."""
    async with Task(type="token-stream", state={"tokens": [], "text": ""}) as task:
        for i in range(n):
            token = f" t{i}"
            await task.update_state(
                {"tokens": task.state["tokens"] + [token], "text": task.state["text"] + token}
            )
            if paced:
                await asyncio.sleep(0)
    return task.state


class Chat(BaseModel):
    tokens: list[str] = []
    done: bool = False


@workflows.activity()
async def pydantic_state() -> dict[str, object]:
    async with Task(type="chat", state=Chat()) as task:
        await task.update_state({"tokens": ["a"]})
        await task.update_state({"tokens": [*task.state.tokens, "b"]})
        await task.update_state(Chat(tokens=["a", "b", "c"]))
        with contextlib.suppress(InvalidStateError):
            await task.update_state({"done": "not a bool"})
        await task.update_state({"done": True})
    return task.state.model_dump()


@workflows.activity()
async def noop_updates() -> int:
    async with Task(type="noop", state={"a": 1, "b": [1, 2]}) as task:
        await task.update_state({"a": 1})
        await task.update_state({"b": [1, 2]})
        await task.update_state({})
    return 0


@workflows.activity()
async def in_place() -> dict[str, object]:
    async with Task(type="in-place", state={"items": [], "meta": {}}) as task:
        task.state["items"].append("x")
        await task.update_state({"items": task.state["items"]})
        task.state["meta"]["k"] = "v"  # never announced with update_state
    return task.state


@workflows.activity()
async def reorder_and_rename() -> dict[str, object]:
    async with Task(type="shapes", state={"xs": [1, 2, 3], "old": {"v": 1}}) as task:
        await task.update_state({"xs": [3, 1, 2]})
        await task.set_state({"xs": [3, 1, 2], "new": {"v": 1}})
        await task.update_state({"xs": [2], "flag": 1})
        await task.update_state({"flag": True})
    return task.state


@workflows.activity()
async def stateless() -> str:
    async with Task(type="marker"):
        pass
    return "ok"


@workflows.activity()
async def raises_inside() -> str:
    async with Task(type="failing", state={"n": 0}) as task:
        await task.update_state({"n": 1})
        raise ValueError("model quota exceeded")


@workflows.activity()
async def waits_for_cancel() -> str:
    async with Task(type="cancellable", state={"n": 0}) as task:
        for i in range(600):
            activity.heartbeat()
            await task.update_state({"n": i})
            await asyncio.sleep(0.05)
    return "not cancelled"


@workflows.activity()
async def bad_inputs() -> list[str]:
    seen = []
    async with Task(type="bad-input", state={"ok": 1}) as task:
        for bad in ({1, 2}, b"raw", float("nan")):
            try:
                await task.update_state({"value": bad})
            except InvalidStateError as e:
                seen.append(str(e))
        try:
            await task.update_state({"blob": "x" * (2 * 1024 * 1024)})
        except PayloadTooLargeError as e:
            seen.append(str(e))
        await task.update_state({"ok": 2})
    return seen


@workflows.activity()
async def bad_type_name() -> str:
    try:
        Task(type="has space")
    except ConfigurationError as e:
        return str(e)
    return "accepted"


async def run(temporal_address: str, nats_url: str, task_queue: str, call: Call) -> tuple:
    return await run_call(temporal_address, nats_url, task_queue, call, ACTIVITIES)


def patch_ops(events: list) -> list[dict[str, object]]:
    """The ops of every IN_PROGRESS event, in order."""
    progress = [e for e in events if e.data.event_type == EventType.CUSTOM_TASK_IN_PROGRESS]
    return [op for e in progress for op in e.data.attributes.payload.value]


ACTIVITIES = [
    many_tokens,
    pydantic_state,
    noop_updates,
    in_place,
    reorder_and_rename,
    stateless,
    raises_inside,
    waits_for_cancel,
    bad_inputs,
    bad_type_name,
]


async def test_paced_token_stream_sends_an_event_per_token(temporal_address, nats_url, task_queue):
    """A producer that yields between tokens gets one IN_PROGRESS event per token (the
    first token, made in the same loop turn as STARTED, shares the second's), and the state
    rebuilt from them equals the activity's final state."""
    result, events = await run(
        temporal_address, nats_url, task_queue, Call("many_tokens", [TOKENS, True])
    )
    progress = [EventType.CUSTOM_TASK_IN_PROGRESS] * (TOKENS - 1)
    assert types(events) == [
        EventType.CUSTOM_TASK_STARTED,
        *progress,
        EventType.CUSTOM_TASK_COMPLETED,
    ]
    (task,) = rebuilt(events)
    assert task.state == result and task.status == "completed"
    seqs = [e.broker_sequence for e in events]
    assert all(a < b for a, b in itertools.pairwise(seqs))


async def test_updates_within_one_loop_turn_share_an_event(temporal_address, nats_url, task_queue):
    """A producer that never yields gets its updates folded into few events (at most 32 KiB
    of ops each), and the state rebuilt from them is still exactly the final one."""
    result, events = await run(
        temporal_address, nats_url, task_queue, Call("many_tokens", [TOKENS])
    )
    progress = [e for e in events if e.data.event_type == EventType.CUSTOM_TASK_IN_PROGRESS]
    assert 1 <= len(progress) <= TOKENS // 100  # at least 100 tokens per event
    assert max(len(orjson.dumps(e.data.attributes.payload.value)) for e in progress) <= 32 * 1024
    (task,) = rebuilt(events)
    assert task.state == result and task.status == "completed"
    # The text's appends are folded into one per event; the list gets one add per token.
    ops = [op for e in progress for op in e.data.attributes.payload.value]
    assert sum(op["op"] == "append" for op in ops) == len(progress)
    assert sum(op["op"] == "add" for op in ops) == TOKENS


async def test_token_patch_is_an_add_and_an_append(temporal_address, nats_url, task_queue):
    """Each token becomes one list `add` and one string `append`, not a copy of the state."""
    _, events = await run(temporal_address, nats_url, task_queue, Call("many_tokens", [3, True]))
    patch = events[-2].data.attributes.payload.value
    assert patch == [
        {"op": "add", "path": "/tokens/2", "value": " t2"},
        {"op": "append", "path": "/text", "value": " t2"},
    ]


async def test_pydantic_state_is_merged_and_validated(temporal_address, nats_url, task_queue):
    """Model state: updates merge, invalid ones are refused, the rebuilt state matches."""
    result, events = await run(temporal_address, nats_url, task_queue, Call("pydantic_state"))
    assert result == {"tokens": ["a", "b", "c"], "done": True}
    (task,) = rebuilt(events)
    assert task.state == result
    # The refused update sent nothing; the others, made in one loop turn, share an event.
    assert patch_ops(events) == [
        {"op": "add", "path": "/tokens/0", "value": "a"},
        {"op": "add", "path": "/tokens/1", "value": "b"},
        {"op": "add", "path": "/tokens/2", "value": "c"},
        {"op": "replace", "path": "/done", "value": True},
    ]


async def test_noop_update_publishes_nothing(temporal_address, nats_url, task_queue):
    """Updates that change nothing produce no IN_PROGRESS event."""
    _, events = await run(temporal_address, nats_url, task_queue, Call("noop_updates"))
    assert types(events) == [EventType.CUSTOM_TASK_STARTED, EventType.CUSTOM_TASK_COMPLETED]


async def test_in_place_mutations_are_published(temporal_address, nats_url, task_queue):
    """Mutating task.state in place is published, with or without a later update_state."""
    result, events = await run(temporal_address, nats_url, task_queue, Call("in_place"))
    assert result == {"items": ["x"], "meta": {"k": "v"}}
    assert patch_ops(events) == [
        {"op": "add", "path": "/items/0", "value": "x"},
        {"op": "add", "path": "/meta/k", "value": "v"},
    ]
    (task,) = rebuilt(events)
    assert task.state == result


async def test_reorder_rename_and_type_changes(temporal_address, nats_url, task_queue):
    """A list reorder, a key rename and 1 -> True never crash and rebuild exactly."""
    result, events = await run(temporal_address, nats_url, task_queue, Call("reorder_and_rename"))
    assert result == {"xs": [2], "new": {"v": 1}, "flag": True}
    (task,) = rebuilt(events)
    assert task.state == result and task.state["flag"] is True


async def test_task_without_state(temporal_address, nats_url, task_queue):
    """A task without state publishes STARTED and COMPLETED only."""
    _, events = await run(temporal_address, nats_url, task_queue, Call("stateless"))
    assert types(events) == [EventType.CUSTOM_TASK_STARTED, EventType.CUSTOM_TASK_COMPLETED]
    assert events[0].data.attributes.payload is None


async def test_exception_publishes_failed_and_propagates(temporal_address, nats_url, task_queue):
    """An exception in the block gives CUSTOM_TASK_FAILED and still fails the activity."""
    result, events = await run(temporal_address, nats_url, task_queue, Call("raises_inside"))
    assert "model quota exceeded" in result["failed"]
    assert types(events)[-1] == EventType.CUSTOM_TASK_FAILED
    assert events[-1].data.attributes.failure.message == "ValueError: model quota exceeded"


async def test_cancellation_publishes_canceled(temporal_address, nats_url, task_queue):
    """Cancelling the activity gives CUSTOM_TASK_CANCELED."""
    call = Call("waits_for_cancel", cancel_after=1.0)
    result, events = await run(temporal_address, nats_url, task_queue, call)
    assert "failed" in result
    assert types(events)[-1] == EventType.CUSTOM_TASK_CANCELED
    assert events[-1].data.attributes.reason == "cancel requested"


async def test_bad_input_is_refused_and_changes_nothing(temporal_address, nats_url, task_queue):
    """Non-JSON values and oversized events raise clear errors; the task goes on."""
    messages, events = await run(temporal_address, nats_url, task_queue, Call("bad_inputs"))
    assert len(messages) == 4
    assert "set" in messages[0] and "bytes" in messages[1] and "nan" in messages[2].lower()
    assert "store" in messages[3].lower() and "reference" in messages[3]
    assert types(events) == [
        EventType.CUSTOM_TASK_STARTED,
        EventType.CUSTOM_TASK_IN_PROGRESS,
        EventType.CUSTOM_TASK_COMPLETED,
    ]
    assert rebuilt(events).get(events[0].data.attributes.custom_task_id).state == {"ok": 2}


async def test_invalid_type_name_is_refused(temporal_address, nats_url, task_queue):
    """A type name with a space is refused with the naming rule."""
    message, events = await run(temporal_address, nats_url, task_queue, Call("bad_type_name"))
    assert "has space" in message and "1-64 characters" in message
    assert events == []


async def test_task_outside_an_activity_is_refused():
    """Task outside a plugged activity says where it can be used."""
    with pytest.raises(NotInPluggedActivityError, match="MistralWorkflowsPlugin"):
        Task(type="token-stream", state={})


async def test_task_on_a_worker_without_plugin_is_refused(temporal_address, task_queue):
    """Task in an activity of a worker without the plugin says to install it."""
    from temporalio.client import Client

    client = await Client.connect(temporal_address)
    async with running_worker(client, task_queue, [RunActivity], ACTIVITIES):
        result = await client.execute_workflow(
            RunActivity.run, Call("stateless"), id=unique("unplugged"), task_queue=task_queue
        )
    assert "MistralWorkflowsPlugin" in result["failed"]


@workflows.activity()
async def leaks_a_password() -> str:
    async with Task(type="leaky", state={}):
        raise ConnectionError("login to postgres://app:hunter2@db/x failed, password=hunter2")


async def test_failure_messages_are_redacted(temporal_address, nats_url, task_queue):
    """A password in an exception message is not stored in the task or activity events."""
    client = await plugged_client(temporal_address, nats_url)
    wid = unique("leak")
    async with running_worker(client, task_queue, [RunActivity], [leaks_a_password]):
        await client.execute_workflow(
            RunActivity.run, Call("leaks_a_password"), id=wid, task_queue=task_queue
        )
    events = await collect(nats_url, workflow_exec_id=wid)
    failures = [e.data.attributes.failure.message for e in events if "FAILED" in e.data.event_type]
    assert len(failures) == 2  # the task's and the activity's
    assert all("hunter2" not in m and "***" in m and "login to" in m for m in failures)


@pytest.mark.parametrize(
    ("old", "new", "ops"),
    [
        ({"n": 1}, {"n": 1}, []),
        ({"n": 1}, {"n": True}, [{"op": "replace", "path": "/n", "value": True}]),
        ({"n": 1}, {"n": 1.0}, [{"op": "replace", "path": "/n", "value": 1.0}]),
        ({"n": 0.0}, {"n": -0.0}, [{"op": "replace", "path": "/n", "value": -0.0}]),
        ({"t": "a"}, {"t": "ab"}, [{"op": "append", "path": "/t", "value": "b"}]),
        ({"t": "ab"}, {"t": "a"}, [{"op": "replace", "path": "/t", "value": "a"}]),
        ({"t": None}, {"t": "a"}, [{"op": "replace", "path": "/t", "value": "a"}]),
        ({}, {"a/b": 1}, [{"op": "add", "path": "/a~1b", "value": 1}]),
    ],
)
def test_top_level_updates_compare_as_exact_json(old, new, ops):
    """The shortcut for top-level scalars keeps JSON's exactness (1, 1.0, True, -0.0)."""
    from mistral_workflows.core.diff import StrLists, diff_keys

    assert diff_keys(old, new, StrLists()) == ops
