"""Tenant isolation by namespace with NATS permissions (the templates of docs/security.md).

One account holds the shared streams; each tenant's users may only publish on, and create
filtered consumers over, their own namespace's subjects, with a private inbox prefix. An
administrator with every permission is the negative control: it does read tenant A's events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import nats
import nats.errors
import pytest
from nats.aio.client import Client as NATS
from temporalio.client import Client

from mistral_workflows import BrokerConnectionError, MistralWorkflowsPlugin
from mistral_workflows.core import subjects
from mistral_workflows.dev import NatsServer, TemporalServer
from mistral_workflows.worker._stream import StreamSettings, provision
from tests.core.test_task import many_tokens
from tests.support import rebuilt, running_worker, task_events, unique
from tests.workflows import Call, RunActivity

STREAM, PREFIX = subjects.DEFAULT_STREAM_NAME, subjects.DEFAULT_PREFIX
SNAPSHOTS = subjects.snapshot_stream(STREAM)
SNAPSHOT_PREFIX = subjects.snapshot_prefix(PREFIX)
FAST = pytest.mark.timeout(60)


def worker_permissions(tenant: str) -> str:
    """Publish events and snapshots of its namespace; check that the streams exist."""
    return f"""{{
      publish: {{ allow: [
        "{PREFIX}.{tenant}.>", "{SNAPSHOT_PREFIX}.{tenant}.>",
        "$JS.API.STREAM.INFO.{STREAM}", "$JS.API.STREAM.INFO.{SNAPSHOTS}" ] }}
      subscribe: {{ allow: ["_INBOX_{tenant}.>"] }} }}"""


def consumer_permissions(tenant: str) -> str:
    """Create consumers filtered on its namespace, pull from them, delete them."""
    return f"""{{
      publish: {{ allow: [
        "$JS.API.CONSUMER.CREATE.{STREAM}.*.{PREFIX}.{tenant}.>",
        "$JS.API.CONSUMER.CREATE.{SNAPSHOTS}.*.{SNAPSHOT_PREFIX}.{tenant}.>",
        "$JS.API.CONSUMER.MSG.NEXT.{STREAM}.*", "$JS.API.CONSUMER.MSG.NEXT.{SNAPSHOTS}.*",
        "$JS.API.CONSUMER.DELETE.{STREAM}.*", "$JS.API.CONSUMER.DELETE.{SNAPSHOTS}.*" ] }}
      subscribe: {{ allow: ["_INBOX_{tenant}.>"] }} }}"""


CONFIG = f"""
accounts {{ APP {{ jetstream: enabled, users: [
  {{ user: admin, password: admin }}
  {{ user: worker-a, password: wa, permissions: {worker_permissions("tenant-a")} }}
  {{ user: worker-b, password: wb, permissions: {worker_permissions("tenant-b")} }}
  {{ user: reader-a, password: ra, permissions: {consumer_permissions("tenant-a")} }}
  {{ user: reader-b, password: rb, permissions: {consumer_permissions("tenant-b")} }}
] }} }}
"""


def login(user: str, password: str, tenant: str | None) -> dict[str, Any]:
    """nats.connect options of a user, with its tenant's private inbox prefix."""
    inbox = {"inbox_prefix": f"_INBOX_{tenant}"} if tenant else {}
    return {"user": user, "password": password, **inbox}


ADMIN = login("admin", "admin", None)
READER_A = login("reader-a", "ra", "tenant-a")
READER_B = login("reader-b", "rb", "tenant-b")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A NATS server with the tenants' users."""
    with NatsServer(store_dir=tmp_path_factory.mktemp("tenants"), config=CONFIG) as server:
        yield server


@pytest.fixture(scope="module")
def temporal_a() -> Iterator[TemporalServer]:
    """A Temporal server with tenant A's namespace."""
    with TemporalServer(namespace="tenant-a") as temporal:
        yield temporal


async def connected(
    server: NatsServer, options: dict[str, Any], denied: asyncio.Event | None = None
) -> NATS:
    """A plain nats-py connection; `denied` is set when the server reports a violation."""

    async def note(e: Exception) -> None:
        if denied is not None and "permissions violation" in str(e):
            denied.set()

    return await nats.connect(server.url, error_cb=note, **options)


@pytest.fixture(scope="module")
async def streamed(server, temporal_a) -> AsyncIterator[tuple[str, Any]]:
    """Streams made by the admin, then one workflow of tenant A streamed by A's worker."""
    admin = await connected(server, ADMIN)
    await provision(admin.jetstream(), StreamSettings())
    await admin.close()
    options = {**login("worker-a", "wa", "tenant-a")}
    plugin = MistralWorkflowsPlugin(server.url, nats_options=options, provision_stream=False)
    client = await Client.connect(temporal_a.address, namespace="tenant-a", plugins=[plugin])
    wid = unique("tenant-a")
    async with running_worker(client, "tenant-a-queue", [RunActivity], [many_tokens]):
        result = await client.execute_workflow(
            RunActivity.run, Call("many_tokens", [4]), id=wid, task_queue="tenant-a-queue"
        )
    yield wid, result


async def read(server: NatsServer, options: dict[str, Any], **filters: Any) -> list[Any]:
    return await task_events(server.url, nats_options=options, **filters)


async def test_tenant_reads_its_own_events(server, streamed):
    """Tenant A's consumer reads A's events, also joining late (from the snapshots)."""
    wid, result = streamed
    (task,) = rebuilt(await read(server, READER_A, namespace="tenant-a", workflow_exec_id=wid))
    assert task.state == result
    late = await read(server, READER_A, namespace="tenant-a", workflow_exec_id=wid, late_join=True)
    assert late[0].metadata.get("snapshot") is True and rebuilt(late).get(task.task_id)


async def test_admin_reads_tenant_a_events(server, streamed):
    """Negative control: a user with broad permissions does read A's events."""
    wid, result = streamed
    (task,) = rebuilt(await read(server, ADMIN, workflow_exec_id=wid))
    assert task.state == result


@FAST
@pytest.mark.parametrize(
    "filters",
    [{"namespace": "tenant-a"}, {}, {"namespace": "tenant-a", "late_join": True}],
    ids=["namespace", "everything", "late-join"],
)
async def test_other_tenant_is_refused_reading_tenant_a(server, streamed, filters):
    """Tenant B asking for A's events (or for everything) gets a permission error at once."""
    wid, _ = streamed
    with pytest.raises(BrokerConnectionError, match="NATS refused") as caught:
        await read(server, READER_B, workflow_exec_id=wid, **filters)
    assert "permissions violation" in str(caught.value)
    assert await read(server, READER_B, namespace="tenant-b") == []  # B itself works


API_LOOKUPS = [
    f"$JS.API.STREAM.INFO.{STREAM}",
    "$JS.API.STREAM.NAMES",
    "$JS.API.STREAM.LIST",
    f"$JS.API.STREAM.MSG.GET.{STREAM}",
    f"$JS.API.CONSUMER.LIST.{STREAM}",
    f"$JS.API.CONSUMER.CREATE.{STREAM}",
]


@FAST
@pytest.mark.parametrize("subject", API_LOOKUPS)
async def test_other_tenant_cannot_list_or_fetch(server, streamed, subject):
    """Stream info, listings, direct gets and unfiltered consumers are denied to B; the
    admin gets an answer to the same request (negative control)."""
    body = b'{"seq": 1}' if "GET" in subject else b""
    admin = await connected(server, ADMIN)
    answer = await admin.request(subject, body, timeout=2)
    await admin.close()
    assert answer.data
    reader = await connected(server, READER_B)
    with pytest.raises(nats.errors.TimeoutError):
        await reader.request(subject, body, timeout=1)
    assert "permissions violation" in str(reader.last_error)
    await reader.close()


@FAST
@pytest.mark.parametrize("subject", [f"{PREFIX}.tenant-a.>", f"{PREFIX}.>", "_INBOX.>"])
async def test_other_tenant_cannot_subscribe_to_tenant_a_subjects(server, streamed, subject):
    """B's subscription to A's subjects (or to the default inbox prefix) is refused and gets
    nothing, while the admin's subscription to the same subject gets the message (control)."""
    violation = asyncio.Event()
    spy, admin = await connected(server, READER_B, violation), await connected(server, ADMIN)
    refused, control = await spy.subscribe(subject), await admin.subscribe(subject)
    await violation.wait()
    await admin.publish(subject.replace(">", "probe"), b"seen")
    assert (await control.next_msg(timeout=5)).data == b"seen"
    with pytest.raises(nats.errors.TimeoutError):
        await refused.next_msg(timeout=0.5)
    await spy.close()
    await admin.close()


@FAST
async def test_other_tenant_cannot_publish_into_tenant_a(server, streamed):
    """B's worker cannot store anything under A's namespace; A's worker can (control)."""
    subject = f"{PREFIX}.tenant-a.injected"
    for options, stored in (
        (login("worker-b", "wb", "tenant-b"), False),
        (login("worker-a", "wa", "tenant-a"), True),
    ):
        nc = await connected(server, options)
        try:
            await nc.jetstream().publish(subject, b"{}", timeout=1)
        except nats.errors.TimeoutError:
            assert not stored and "permissions violation" in str(nc.last_error)
        await nc.close()
        admin = await connected(server, ADMIN)
        info = await admin.jetstream().stream_info(STREAM, subjects_filter=subject)
        await admin.close()
        assert (subject in (info.state.subjects or {})) is stored
