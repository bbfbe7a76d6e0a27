"""Tokens: scoped to a namespace and optionally one workflow tree; development mode."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import httpx2 as httpx
import pytest
from mistralai.client import errors

from mistral_workflows.gateway import mint_token, verify_token
from tests.gateway.gateway_support import (
    SECRET,
    chat_worker,
    read_until,
    sequences,
    start_chat,
)
from tests.support import collect, unique

KEY = SECRET.encode()
STREAM = "/v1/workflows/events/stream"


@pytest.fixture(scope="module")
async def two_trees(nats_url, temporal_address):
    """Two finished workflow trees, A and B, in the default namespace."""
    queue = unique("gw-auth")
    trees = unique("tree-a"), unique("tree-b")
    async with chat_worker(temporal_address, nats_url, queue) as temporal:
        for root in trees:
            await (await start_chat(temporal, queue, root)).result()
    return trees


async def _status(url: str, path: str, params: dict[str, str], token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with (
        httpx.AsyncClient(timeout=10) as http,
        http.stream("GET", url + path, params=params, headers=headers) as response,
    ):
        return response.status_code


async def test_token_for_tree_a_gets_403_on_tree_b(secured_gateway, two_trees, nats_url):
    """A token scoped to tree A reads A (control) and gets 403 for B by root, by execution
    id (both routes) and in the list; a namespace-wide token reads B (control)."""
    a, b = two_trees
    token_a = mint_token(KEY, "default", root_workflow_exec_id=a, ttl=60)
    url = secured_gateway.url
    refused = [
        (STREAM, {"root_workflow_exec_id": b}),
        (STREAM, {"workflow_exec_id": b}),
        (STREAM, {"parent_workflow_exec_id": b}),
        (f"/v1/workflows/executions/{b}/stream", {}),
        ("/v1/workflows/events/list", {"root_workflow_exec_id": b}),
        ("/v1/workflows/events/list", {"workflow_exec_id": b}),
    ]
    for path, params in refused:
        assert await _status(url, path, params, token_a) == 403, (path, params)
    async with secured_gateway.client(token_a) as client:
        stream = await client.workflows.events.get_stream_events_async(root_workflow_exec_id=a)
        got_a = sequences(await read_until(stream))
        with pytest.raises(errors.SDKError) as caught:
            await client.workflows.executions.stream_async(execution_id=b)
    assert caught.value.status_code == 403
    assert "another workflow tree" in caught.value.body
    assert got_a == [e.broker_sequence for e in await collect(nats_url, root_workflow_exec_id=a)]
    everyone = mint_token(KEY, "default", ttl=60)
    async with secured_gateway.client(everyone) as client:
        stream = await client.workflows.executions.stream_async(execution_id=b)
        got_b = sequences(await read_until(stream))
    assert got_b == [e.broker_sequence for e in await collect(nats_url, workflow_exec_id=b)]


async def test_token_is_confined_to_its_namespace(secured_gateway, two_trees):
    """A token of another namespace reads nothing of the default one and may not name it;
    the same read with a default-namespace token gets the events (control)."""
    a, _ = two_trees
    other = mint_token(KEY, "other-namespace", ttl=60)
    url = secured_gateway.url
    params = {"workflow_exec_id": a, "namespace": "default"}
    assert await _status(url, STREAM, params, other) == 403
    results = []
    for token in (other, mint_token(KEY, "default", ttl=60)):
        async with secured_gateway.client(token) as client:
            stream = await client.workflows.events.get_stream_events_async(workflow_exec_id=a)
            results.append(sequences(await read_until(stream)))
    assert results[0] == []
    assert results[1]


async def test_missing_bad_and_expired_tokens_get_401(secured_gateway, two_trees):
    """No token, a token signed with another secret, an expired one or garbage: 401 with
    a reason; the browser's access_token parameter is accepted."""
    a, _ = two_trees
    params = {"workflow_exec_id": a}
    url = secured_gateway.url + STREAM
    bad = {
        "missing": None,
        "other secret": mint_token(b"k" * 40, "default", ttl=60),
        "expired": mint_token(KEY, "default", ttl=60, now=time.time() - 120),
        "garbage": "not.a.token",
        "truncated": mint_token(KEY, "default", ttl=60)[:-4],
    }
    async with httpx.AsyncClient(timeout=10) as http:
        for name, token in bad.items():
            headers = {"Authorization": f"Bearer {token}"} if token else None
            response = await http.get(url, params=params, headers=headers)
            assert response.status_code == 401, name
            assert response.json()["error"] == "unauthorized", name
            assert response.headers["www-authenticate"] == "Bearer"
    good = mint_token(KEY, "default", root_workflow_exec_id=a, ttl=60)
    assert await _status(secured_gateway.url, STREAM, {**params, "access_token": good}, None) == 200


async def test_a_token_issued_in_the_future_gets_401(secured_gateway, two_trees):
    """A token minted on a clock 60 days ahead is a 401 saying so; the same token minted
    now reads (control)."""
    a, _ = two_trees
    params = {"workflow_exec_id": a}
    ahead = mint_token(KEY, "default", ttl=30 * 86400, now=time.time() + 60 * 86400)
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            secured_gateway.url + STREAM,
            params=params,
            headers={"Authorization": f"Bearer {ahead}"},
        )
    assert response.status_code == 401
    assert "issued in the future" in response.json()["reason"]
    now = mint_token(KEY, "default", ttl=30 * 86400)
    assert await _status(secured_gateway.url, STREAM, params, now) == 200


def test_token_command_mints_a_scoped_token(tmp_path):
    """`mistral-workflows token` prints a token with the given scope and lifetime, and
    refuses to run without a secret or with a short one."""
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    command = [sys.executable, "-m", "mistral_workflows", "token", "--namespace", "default"]
    scoped = [*command, "--root-workflow-exec-id", "tree-a", "--ttl", "120"]
    out = subprocess.run(
        [*scoped, "--secret-file", str(secret_file)], capture_output=True, text=True, check=True
    )
    grant = verify_token(KEY, out.stdout.strip())
    assert (grant.namespace, grant.root_workflow_exec_id) == ("default", "tree-a")
    assert grant.expires_at is not None and 100 < grant.expires_at - time.time() <= 120
    env = {"PATH": "/usr/bin:/bin"}
    refused = subprocess.run(command, capture_output=True, text=True, env=env)
    assert refused.returncode == 1
    assert "no secret to sign with" in refused.stderr
    secret_file.write_text("short")
    refused = subprocess.run(
        [*command, "--secret-file", str(secret_file)], capture_output=True, text=True, env=env
    )
    assert refused.returncode == 1
    assert "at least 32 bytes" in refused.stderr


def test_development_mode_binds_to_loopback_only(nats_url):
    """Without a secret the gateway refuses a public address, with a clear error."""
    env = {"PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "mistral_workflows", "gateway", "--nats-url", nats_url]
    refused = subprocess.run(
        [*command, "--host", "0.0.0.0", "--port", "1"], capture_output=True, text=True, env=env
    )
    assert refused.returncode == 1
    assert "only binds to loopback" in refused.stderr


async def test_development_mode_accepts_any_token(gateway, two_trees):
    """In development mode any bearer token, or none, reads the events."""
    a, _ = two_trees
    statuses = await asyncio.gather(
        *(_status(gateway.url, STREAM, {"workflow_exec_id": a}, t) for t in (None, "anything"))
    )
    assert statuses == [200, 200]
