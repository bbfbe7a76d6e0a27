"""A failure after a stream's response began reaches the client as `event: error`.

The gateway connects as tenant B's reader on a server with per-tenant permissions: asking
for tenant A's events is refused by NATS once the SSE response has started, so the client
gets an `error` message with `{"error", "reason"}` (and the stream ends) instead of
silence. The same request for tenant B's own events gets no error: the control.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import nats
import pytest

from mistral_workflows.dev import NatsServer
from mistral_workflows.worker._stream import StreamSettings, provision
from tests.gateway.gateway_support import Gateway, gateway_process, raw_sse
from tests.security.test_tenants import CONFIG


@pytest.fixture(scope="module")
def tenant_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with NatsServer(store_dir=tmp_path_factory.mktemp("tenants"), config=CONFIG) as server:
        yield server


@pytest.fixture(scope="module")
async def reader_b_gateway(
    tenant_server: NatsServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Gateway]:
    admin = await nats.connect(tenant_server.url, user="admin", password="admin")
    await provision(admin.jetstream(), StreamSettings())
    await admin.close()
    password = tmp_path_factory.mktemp("secrets") / "reader-b"
    password.write_text("rb")
    flags = ("--user", "reader-b", "--password-file", str(password))
    with gateway_process(
        tenant_server.url, None, *flags, "--inbox-prefix", "_INBOX_tenant-b"
    ) as gw:
        yield gw


def messages(blocks: list[str], kind: str) -> list[dict[str, object]]:
    """The data of the SSE messages of one event kind."""
    found = []
    for block in blocks:
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if lines.get("event") == kind:
            found.append(json.loads(lines["data"]))
    return found


async def test_a_refused_read_ends_the_stream_with_an_error_event(reader_b_gateway):
    url = f"{reader_b_gateway.url}/v1/workflows/events/stream"
    params = {"workflow_exec_id": "some-workflow", "namespace": "tenant-a"}
    blocks = await raw_sse(url, params, idle=5)
    assert blocks[0] == ": connected"
    (error,) = messages(blocks, "error")
    assert set(error) == {"error", "reason"}
    assert error["error"] == "BrokerConnectionError"
    assert "NATS refused" in str(error["reason"]) and "tenant-a" in str(error["reason"])


async def test_control_the_tenant_s_own_events_give_no_error(reader_b_gateway):
    url = f"{reader_b_gateway.url}/v1/workflows/events/stream"
    params = {"workflow_exec_id": "some-workflow", "namespace": "tenant-b"}
    blocks = await raw_sse(url, params, idle=2)
    assert blocks[0] == ": connected"
    assert messages(blocks, "error") == []
