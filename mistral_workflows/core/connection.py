"""Connecting to NATS with a bounded budget and errors that say what is wrong.

nats-py's defaults retry a dead server or a wrong password for about two minutes before
giving up. We make a few short attempts ourselves, fail at once on an authentication
error, and only then turn on nats-py's reconnection for the life of the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client as NATS

from mistral_workflows.core.errors import BrokerConnectionError, redact_url

__all__ = ["connect", "display_url"]

log = logging.getLogger("mistral_workflows")


def display_url(servers: str | Sequence[str]) -> str:
    """The server address(es) without credentials, for messages."""
    if isinstance(servers, str):
        return redact_url(servers)
    return ", ".join(redact_url(s) for s in servers)


async def connect(
    servers: str | Sequence[str],
    *,
    connect_timeout: float = 2.0,
    attempts: int = 3,
    reconnect_attempts: int = -1,
    reconnect_wait: float = 0.5,
    name: str = "mistral-workflows",
    **options: Any,
) -> NATS:
    """Connect to NATS: `attempts` tries of `connect_timeout` seconds, then a clear error.

    Args:
        servers: One URL or a list, e.g. "nats://127.0.0.1:4222".
        connect_timeout: Seconds per connection attempt.
        attempts: Connection attempts before giving up.
        reconnect_attempts: Reconnection attempts per server once connected; by default
            forever, as a worker must recover from any outage (each activity's
            `persist_timeout` bounds how long its events may wait).
        reconnect_wait: Seconds between reconnection attempts.
        name: The client name shown by the server's monitoring.
        **options: Further `nats.connect` options (user, password, token, tls,
            user_credentials, nkeys_seed, ...).

    Raises:
        BrokerConnectionError: the server cannot be reached or refuses our credentials.
    """
    where = display_url(servers)
    last: BaseException | None = None
    seen: list[Exception] = []

    async def remember(e: Exception) -> None:
        # nats-py reports every failed try here; our own error says it once, clearly.
        seen.append(e)
        log.debug("mistral_workflows: NATS at %s: %r", where, e)

    for attempt in range(attempts):
        if attempt:
            await asyncio.sleep(min(0.25 * 2**attempt, 2.0))
        nc = NATS()
        # nats-py's annotations say int for these timeouts, but it takes seconds as floats.
        first: dict[str, Any] = {"connect_timeout": connect_timeout, "reconnect_time_wait": 0.1}
        opening = nc.connect(
            servers if isinstance(servers, str) else list(servers),
            name=name,
            allow_reconnect=False,
            # nats-py treats 0 as "retry forever" on the first connect; 1 means two
            # tries per server, then NoServersError.
            max_reconnect_attempts=1,
            error_cb=remember,
            **first,
            **options,
        )
        try:
            await _bounded(opening, connect_timeout * 4 + 1)
        except (nats.errors.Error, OSError, TimeoutError) as e:
            # A refused client may keep its socket open: close it, quietly.
            with contextlib.suppress(Exception):
                await _bounded(nc.close(), 1.0)
            last = seen[-1] if seen and isinstance(e, nats.errors.NoServersError) else e
            if _is_auth_error(last):
                raise BrokerConnectionError(
                    f"NATS at {where} refused our credentials ({_describe(e)}); check the "
                    "user/password, token, NKey seed or creds file given to the plugin"
                ) from e
            continue
        # Only now that we are connected do we let nats-py reconnect on its own.
        nc.options["allow_reconnect"] = True
        nc.options["max_reconnect_attempts"] = reconnect_attempts
        nc.options["reconnect_time_wait"] = reconnect_wait
        return nc
    raise BrokerConnectionError(
        f"cannot connect to NATS at {where} after {attempts} attempts of "
        f"{connect_timeout:g}s ({_describe(last)}); is nats-server running there with "
        "JetStream enabled (nats-server -js)? `mistral-workflows dev` starts one locally."
    ) from last


async def _bounded(opening: Coroutine[Any, Any, None], seconds: float) -> None:
    """Await a connection attempt (or its closing) for at most `seconds`.

    A failed TLS handshake can leave nats-py waiting for ever, and it may not even end when
    cancelled (asyncio.wait_for would then wait too): give up on it without waiting.
    """
    attempt = asyncio.ensure_future(opening)
    done, _ = await asyncio.wait({attempt}, timeout=seconds)
    if not done:
        attempt.cancel()
        raise TimeoutError(f"no answer within {seconds:g}s (a TLS or protocol mismatch?)")
    attempt.result()


def _is_auth_error(e: BaseException) -> bool:
    text = str(e).lower()
    return isinstance(e, nats.errors.AuthorizationError) or "authorization" in text


def _describe(e: BaseException | None) -> str:
    if e is None:
        return "no answer"
    text = str(e) or type(e).__name__
    return text if type(e).__name__ in text else f"{type(e).__name__}: {text}"
