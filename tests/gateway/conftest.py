"""Gateway processes shared by the gateway tests (real uvicorn servers on loopback)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gateway.gateway_support import SECRET, Gateway, gateway_process


@pytest.fixture(scope="session")
def gateway(nats_url: str) -> Iterator[Gateway]:
    """A gateway in development mode (no secret), with a 1 s keep-alive."""
    with gateway_process(nats_url, None, "--keepalive", "1") as running:
        yield running


@pytest.fixture(scope="session")
def secured_gateway(nats_url: str) -> Iterator[Gateway]:
    """A gateway that requires tokens signed with `SECRET`."""
    with gateway_process(nats_url, SECRET) as running:
        yield running
