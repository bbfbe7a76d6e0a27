"""`create_app()` served without the command enforces the command's rules: the configured
secret, and development mode for this machine only."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx2 as httpx
import pytest
import uvicorn

from mistral_workflows.dev import free_port
from mistral_workflows.gateway import SECRET_ENV, GatewaySettings, create_app, mint_token
from tests.gateway.gateway_support import SECRET
from tests.support import unique

LIST = "/v1/workflows/events/list"
STREAM = "/v1/workflows/events/stream"


@contextlib.asynccontextmanager
async def served(app: object) -> AsyncIterator[str]:
    """`app` served by plain uvicorn on a loopback port, as a user would serve it."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn stopped before it started"
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_factory_requires_the_secret_of_the_environment(nats_url, monkeypatch):
    """With the secret variable set, the factory's app refuses a request without a token
    (401) and serves one with a valid token (control)."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    app = create_app(GatewaySettings(nats_url=nats_url))
    params = {"workflow_exec_id": unique("nobody")}
    token = mint_token(SECRET.encode(), "default", ttl=60)
    async with served(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        refused = await http.get(STREAM, params=params)
        async with http.stream(
            "GET", STREAM, params=params, headers={"Authorization": f"Bearer {token}"}
        ) as response:
            allowed = response.status_code
    assert refused.status_code == 401
    assert "bearer token is required" in refused.json()["reason"]
    assert allowed == 200


@pytest.mark.parametrize(
    ("client", "server", "status"),
    [
        (("10.0.0.5", 1234), "127.0.0.1", 403),
        (("127.0.0.1", 1234), "10.0.0.1", 403),
        (("127.0.0.1", 1234), "[::1]", 200),
        (("127.0.0.1", 1234), "127.0.0.1", 200),
    ],
)
async def test_development_mode_answers_this_machine_only(nats_url, client, server, status):
    """Without a secret, a connection with either end off loopback gets a 403 that says to
    set a secret; loopback on both ends reads (control)."""
    app = create_app(GatewaySettings(nats_url=nats_url, secret=None))
    transport = httpx.ASGITransport(app, client=client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=f"http://{server}") as http,
    ):
        response = await http.get(LIST, params={"workflow_exec_id": unique("nobody")})
    assert response.status_code == status, response.text
    if status == 403:
        assert "development mode" in response.json()["reason"]
        assert SECRET_ENV in response.json()["reason"]
