"""Encrypted task state, against real servers: the stored bytes hold no plain text of the
protected state, key holders rebuild it exactly, and everyone else gets a clear error or
the encrypted form."""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any

import nats
import pytest
from temporalio import workflow

import mistral_workflows as workflows
from examples import encrypted_stream
from mistral_workflows import (
    ConfigurationError,
    DecryptionError,
    Encryption,
    StreamEvent,
    TaskStates,
)
from mistral_workflows.core import subjects
from mistral_workflows.core.events import CUSTOM_TASK_EVENT_TYPES
from mistral_workflows.core.filter import EventFilter
from mistral_workflows.core.task import Task
from tests.support import (
    IDLE,
    collect,
    official_models,
    plugged_client,
    rebuilt,
    running_worker,
    unique,
)
from tests.workflows import Call, RunActivity

K1, K2 = os.urandom(32), os.urandom(32)
PIECES = 3


def pieces(seed: str, n: int = PIECES) -> list[str]:
    """Secret pieces derived from a seed: the seed travels in clear (in the activity's
    input), the pieces never do."""
    return [hashlib.sha256(f"{seed}/{i}".encode()).hexdigest()[:16] for i in range(n)]


def final_state(seed: str) -> dict[str, Any]:
    parts = pieces(seed)
    return {
        "public": "visible-marker",
        "secret": "".join(parts),
        "tokens": parts,
        "nested": {"note": parts[0]},
    }


@workflows.activity()
async def stream_secret(task_type: str, seed: str) -> int:
    state = {"public": "visible-marker", "secret": "", "tokens": [], "nested": {"note": ""}}
    async with Task(type=task_type, state=state) as task:
        for piece in pieces(seed):
            await task.update_state(
                {"secret": task.state["secret"] + piece, "tokens": [*task.state["tokens"], piece]}
            )
        await task.update_state({"nested": {"note": pieces(seed)[0]}})
    return PIECES  # never the secret: results are shown in lifecycle events


@workflow.defn(sandboxed=False)
class SecretPlan:
    """A workflow-level task whose state holds a secret."""

    @workflow.run
    async def run(self, seed: str) -> int:
        async with Task(type="plan-secret", state={"secret": ""}) as plan:
            for piece in pieces(seed):
                await plan.update_state({"secret": plan.state["secret"] + piece})
        return PIECES


async def run_secret(
    temporal_address: str,
    nats_url: str,
    task_queue: str,
    encryption: Encryption | None,
    task_type: str = "secret-stream",
) -> tuple[str, str]:
    """Run `stream_secret` on a worker with `encryption`; return the workflow id and seed."""
    client = await plugged_client(temporal_address, nats_url, encryption=encryption)
    wid, seed = unique("enc"), uuid.uuid4().hex
    async with running_worker(client, task_queue, [RunActivity], [stream_secret]):
        call = Call("stream_secret", [task_type, seed])
        await client.execute_workflow(RunActivity.run, call, id=wid, task_queue=task_queue)
    return wid, seed


async def stored_bytes(nats_url: str, exec_id: str) -> list[bytes]:
    """Every message of the execution as stored, in the event stream and the snapshot
    stream, read with plain nats-py."""
    nc = await nats.connect(nats_url)
    found: list[bytes] = []
    try:
        for prefix in (subjects.DEFAULT_PREFIX, subjects.snapshot_prefix(subjects.DEFAULT_PREFIX)):
            sub = await nc.jetstream().subscribe(
                EventFilter(workflow_exec_id=exec_id).subject(prefix), ordered_consumer=True
            )
            try:
                while True:
                    msg = await sub.next_msg(timeout=IDLE)
                    found.append(msg.subject.encode() + b"\n" + msg.data)
            except TimeoutError:
                pass
            await sub.unsubscribe()
    finally:
        await nc.close()
    snapshots = subjects.snapshot_prefix(subjects.DEFAULT_PREFIX).encode() + b"."
    assert any(snapshots in m for m in found), "no snapshot was read"
    return found


def leaked(messages: list[bytes], seed: str) -> list[str]:
    """The secret pieces found in the stored bytes."""
    blob = b"\n".join(messages)
    return [p for p in [*pieces(seed), "".join(pieces(seed))] if p.encode() in blob]


async def test_whole_state_is_not_stored_in_clear(temporal_address, nats_url, task_queue):
    """Whole-state mode: no piece of the secret in either stream; key holders rebuild it."""
    enc = Encryption(keys={"k1": K1})
    wid, seed = await run_secret(temporal_address, nats_url, task_queue, enc)
    stored = await stored_bytes(nats_url, wid)
    assert leaked(stored, seed) == []
    assert not any(b"visible-marker" in m for m in stored)  # the whole state is hidden
    (task,) = rebuilt(await collect(nats_url, workflow_exec_id=wid, encryption=enc))
    assert (task.state, task.status) == (final_state(seed), "completed")


async def test_marked_fields_only_are_encrypted(temporal_address, nats_url, task_queue):
    """Field mode: the marked fields are hidden, the others stay readable."""
    enc = Encryption(keys={"k1": K1}, fields={"secret", "tokens", "nested"})
    wid, seed = await run_secret(temporal_address, nats_url, task_queue, enc)
    stored = await stored_bytes(nats_url, wid)
    assert leaked(stored, seed) == []
    assert any(b'"public":"visible-marker"' in m for m in stored)
    (task,) = rebuilt(await collect(nats_url, workflow_exec_id=wid, encryption=enc))
    assert task.state == final_state(seed)


async def test_without_encryption_the_secret_is_stored_in_clear(
    temporal_address, nats_url, task_queue
):
    """Negative control: the same run without encryption leaves the secret in the bytes."""
    wid, seed = await run_secret(temporal_address, nats_url, task_queue, None)
    assert len(leaked(await stored_bytes(nats_url, wid), seed)) == PIECES + 1


async def test_late_joiner_decrypts_the_snapshot(temporal_address, nats_url, task_queue):
    """A late joiner with the key rebuilds the exact state from the encrypted snapshot."""
    for fields in (None, {"secret", "tokens"}):
        enc = Encryption(keys={"k1": K1}, fields=fields)
        wid, seed = await run_secret(temporal_address, nats_url, task_queue, enc)
        joined = await collect(nats_url, workflow_exec_id=wid, late_join=True, encryption=enc)
        assert any(e.metadata.get("snapshot") for e in joined)
        (task,) = rebuilt(joined)
        assert task.state == final_state(seed)


async def test_encrypted_messages_parse_with_the_official_models(
    temporal_address, nats_url, task_queue
):
    """Encrypted events still parse as the official client's event types, with the
    official encoding options and encrypted-value wrappers."""
    for fields in (None, {"secret"}):
        enc = Encryption(keys={"k1": K1}, fields=fields)
        wid, _ = await run_secret(temporal_address, nats_url, task_queue, enc)
        parsed = await official_models(nats_url, workflow_exec_id=wid)
        payloads = [
            e.data.attributes.payload
            for e in parsed
            if e.data.event_type in CUSTOM_TASK_EVENT_TYPES and e.data.attributes.payload
        ]
        options = {tuple(p.encoding_options) for p in payloads}
        whole = fields is None
        assert options == (
            {("encrypted",), ("encrypted-partial",)} if whole else {("encrypted-partial",)}
        )
        appends = [
            op
            for p in payloads
            if p.type == "json_patch"
            for op in p.value
            if op.op == "append" and op.path == "/secret"
        ]
        assert appends
        assert all(type(op.value).__name__ == "EncryptedPatchValue" for op in appends)


async def test_keys_rotate_by_id(temporal_address, nats_url, task_queue):
    """Events written with k1, then with k2: a consumer holding both decrypts all, one
    holding only k2 gets an error naming k1."""
    task_type = unique("rotation")
    runs = []
    for enc in (Encryption(keys={"k1": K1}), Encryption(keys={"k1": K1, "k2": K2}, active="k2")):
        runs.append(await run_secret(temporal_address, nats_url, task_queue, enc, task_type))
    both = Encryption(keys={"k2": K2, "k1": K1})
    tasks = rebuilt(await collect(nats_url, stream=task_type, encryption=both))
    assert sorted(t.state["secret"] for t in tasks) == sorted(
        final_state(seed)["secret"] for _, seed in runs
    )
    later = await collect(nats_url, workflow_exec_id=runs[1][0], encryption=Encryption({"k2": K2}))
    (task,) = rebuilt(later)
    assert task.state == final_state(runs[1][1])
    with pytest.raises(DecryptionError, match="key id 'k1'"):
        await collect(nats_url, workflow_exec_id=runs[0][0], encryption=Encryption({"k2": K2}))


async def test_wrong_or_missing_key(temporal_address, nats_url, task_queue):
    """Another key under the same id is a clear error naming it; without a key, subscribe
    yields the encrypted form and TaskStates says which key it needs."""
    enc = Encryption(keys={"k1": K1})
    wid, seed = await run_secret(temporal_address, nats_url, task_queue, enc)
    wrong = Encryption(keys={"k1": os.urandom(32)})
    with pytest.raises(DecryptionError, match="with key 'k1'"):
        await collect(nats_url, workflow_exec_id=wid, encryption=wrong)
    with pytest.raises(DecryptionError, match="with key 'k1'"):
        TaskStates(encryption=wrong).apply(
            next(e for e in await collect(nats_url, workflow_exec_id=wid) if _is_task(e))
        )
    plain = [e for e in await collect(nats_url, workflow_exec_id=wid) if _is_task(e)]
    started = plain[0].data.attributes.payload
    assert isinstance(started.value, str) and seed not in started.value
    with pytest.raises(DecryptionError, match=r"key id 'k1'.*encryption=Encryption"):
        TaskStates().apply(plain[0])


async def test_ciphertext_cannot_be_moved_to_another_event(temporal_address, nats_url, task_queue):
    """A stored ciphertext copied into another event does not decrypt (bound to its id)."""
    enc = Encryption(keys={"k1": K1})
    wid, _ = await run_secret(temporal_address, nats_url, task_queue, enc)
    events = [e for e in await collect(nats_url, workflow_exec_id=wid) if _is_task(e)]
    started, completed = events[0], events[-1]
    body = completed.model_dump(mode="json")
    body["data"]["attributes"]["payload"] = started.model_dump(mode="json")["data"]["attributes"][
        "payload"
    ]
    moved = StreamEvent.model_validate(body)
    with pytest.raises(DecryptionError, match="moved from another event"):
        enc.decrypt_event(moved)
    assert enc.decrypt_event(started).data.attributes.payload.value["secret"] == ""  # control


async def test_workflow_level_task_is_encrypted(temporal_address, nats_url, task_queue):
    """A Task in workflow code is encrypted too, and decrypts to its state."""
    enc = Encryption(keys={"k1": K1})
    client = await plugged_client(temporal_address, nats_url, encryption=enc)
    wid, seed = unique("enc-plan"), uuid.uuid4().hex
    async with running_worker(client, task_queue, [SecretPlan]):
        await client.execute_workflow(SecretPlan.run, seed, id=wid, task_queue=task_queue)
    nc = await nats.connect(nats_url)
    try:
        sub = await nc.jetstream().subscribe(
            EventFilter(workflow_exec_id=wid).subject(subjects.DEFAULT_PREFIX),
            ordered_consumer=True,
        )
        stored: list[bytes] = []
        try:
            while True:
                stored.append((await sub.next_msg(timeout=IDLE)).data)
        except TimeoutError:
            pass
    finally:
        await nc.close()
    assert any(b"plan-secret" in m for m in stored)
    assert leaked(stored, seed) == []
    (task,) = rebuilt(await collect(nats_url, workflow_exec_id=wid, encryption=enc))
    assert task.state == {"secret": "".join(pieces(seed))}


async def test_example_streams_an_encrypted_api_key(temporal_address, nats_url, task_queue):
    """examples/encrypted_stream.py: the key holder reads the API key, the stream does not
    hold it."""
    wid, state = await encrypted_stream.issue_and_read(
        nats_url, temporal_address, os.urandom(32).hex(), task_queue
    )
    assert state == {"user": "ada", "status": "issued", "api_key": "sk-live-4f9c2e"}
    stored = await stored_bytes(nats_url, wid)
    assert not any(b"live-" in m or b"4f9c2e" in m for m in stored)
    assert any(b'"status":"issued"' in m for m in stored)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keys": {"k1": b"short"}}, "32 bytes"),
        ({"keys": {"bad id": K1}}, "key id"),
        ({"keys": {}}, "non-empty"),
        ({"keys": {"k1": K1}, "active": "k9"}, "active must name"),
        ({"keys": {"k1": K1}, "fields": "secret"}, "collection of top-level field names"),
        ({"keys": {"k1": K1}, "fields": []}, "leave it out"),
    ],
)
def test_misconfiguration_is_refused_at_construction(kwargs, message):
    """Bad keys, ids, active key or fields raise ConfigurationError naming the problem."""
    with pytest.raises(ConfigurationError, match=message):
        Encryption(**kwargs)


def test_keys_never_appear_in_repr():
    """The repr names key ids, never key bytes."""
    text = repr(Encryption(keys={"k1": K1}))
    assert "k1" in text and K1.hex() not in text and repr(K1) not in text


def _is_task(event: StreamEvent) -> bool:
    return event.data.event_type in CUSTOM_TASK_EVENT_TYPES


def test_missing_cryptography_names_the_extra():
    """Without the cryptography package, Encryption says which extra installs it."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['cryptography'] = None\n"
        "from mistral_workflows import Encryption\n"
        "Encryption(keys={'k1': bytes(32)})\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0
    assert "pip install 'mistral-workflows[encryption]'" in done.stderr


def test_plugin_needs_the_active_key_among_several():
    """A consumer may hold several keys without naming one; the plugin must know which
    key encrypts."""
    from mistral_workflows import MistralWorkflowsPlugin

    several = Encryption(keys={"k1": K1, "k2": K2})
    with pytest.raises(ConfigurationError, match="active="):
        MistralWorkflowsPlugin(encryption=several)
    MistralWorkflowsPlugin(encryption=Encryption(keys={"k1": K1, "k2": K2}, active="k2"))
