"""The size check counts headers exactly as the server does: an event at the limit is
stored, one byte more is refused before sending, and the connection stays up."""

from __future__ import annotations

import asyncio

from mistral_workflows import Encryption, PayloadTooLargeError
from mistral_workflows import activity as activity_defn
from mistral_workflows.core import encoding
from mistral_workflows.core.task import Task
from mistral_workflows.dev import NatsServer
from tests.support import plugged_client, rebuilt, running_worker, task_events, unique
from tests.workflows import Call, RunActivity

SERVER_MAX_PAYLOAD = 64 * 1024


@activity_defn()
async def at_the_limit() -> list[str]:
    outcomes = []
    async with Task(type="limit", state={"pad": "", "n": 0}) as task:
        low, high, tries = 0, SERVER_MAX_PAYLOAD, 0
        while low < high:  # the largest pad that the library accepts, found by trying
            middle = (low + high + 1) // 2
            tries += 1
            try:
                # A new letter each time, so that each update replaces the whole pad.
                await task.update_state({"pad": "abcdefgh"[tries % 8] * middle})
                await asyncio.sleep(0)  # its own event: updates of one loop turn are folded
                low = middle
            except PayloadTooLargeError:
                high = middle - 1
        outcomes.append(f"largest {low}")
        try:
            await task.update_state({"pad": "w" * (low + 1)})
        except PayloadTooLargeError as e:
            outcomes.append(f"refused: {e}")
        await task.update_state({"pad": "", "n": 1})
    return outcomes


async def search_the_limit(
    temporal_address, task_queue, tmp_path, encryption: Encryption | None = None
) -> tuple[object, list]:
    config = f"max_payload: {SERVER_MAX_PAYLOAD}"
    with NatsServer(store_dir=tmp_path, config=config) as server:
        client = await plugged_client(
            temporal_address,
            server.url,
            max_event_bytes=SERVER_MAX_PAYLOAD,
            persist_timeout=3,
            encryption=encryption,
        )
        wid = unique("limit")
        async with running_worker(client, task_queue, [RunActivity], [at_the_limit]):
            outcomes = await client.execute_workflow(
                RunActivity.run, Call("at_the_limit"), id=wid, task_queue=task_queue
            )
        return outcomes, await task_events(server.url, workflow_exec_id=wid, encryption=encryption)


async def test_event_at_the_server_limit_is_stored_and_one_more_byte_refused(
    temporal_address, task_queue, tmp_path
):
    """Binary-search the largest accepted update against a server with a 64 KiB
    max_payload: everything accepted is stored, nothing closes the connection."""
    outcomes, events = await search_the_limit(temporal_address, task_queue, tmp_path)
    assert isinstance(outcomes, list)
    largest = int(outcomes[0].split()[1])
    assert largest > SERVER_MAX_PAYLOAD - 2048  # only the envelope and headers are overhead
    assert outcomes[1].startswith("refused:") and "store" in outcomes[1].lower()
    assert max(len(e.model_dump_json()) for e in events) > SERVER_MAX_PAYLOAD - 2048
    (task,) = rebuilt(events)
    assert task.state == {"pad": "", "n": 1} and task.status == "completed"


async def test_encrypted_events_are_sized_after_encryption(temporal_address, task_queue, tmp_path):
    """Encryption makes values a third larger: an update that fits in clear but not once
    encrypted is refused before anything changes; everything accepted is stored and the
    state rebuilds with the key."""
    encryption = Encryption(keys={"k1": bytes(range(32))})
    outcomes, events = await search_the_limit(temporal_address, task_queue, tmp_path, encryption)
    assert isinstance(outcomes, list)
    largest = int(outcomes[0].split()[1])
    assert SERVER_MAX_PAYLOAD // 2 < largest < SERVER_MAX_PAYLOAD * 3 // 4
    assert outcomes[1].startswith("refused:")
    (task,) = rebuilt(events)
    assert task.state == {"pad": "", "n": 1} and task.status == "completed"


async def test_negative_control_not_counting_headers_breaks_the_connection(
    temporal_address, task_queue, tmp_path, monkeypatch
):
    """Counting the payload alone (as nats-py does) lets an event past max_payload: the
    server drops the connection and the attempt fails. The test above would catch it."""
    monkeypatch.setattr(encoding, "_header_bytes", lambda headers: 0)
    outcome, _ = await search_the_limit(temporal_address, task_queue, tmp_path)
    assert isinstance(outcome, dict) and "failed" in outcome
