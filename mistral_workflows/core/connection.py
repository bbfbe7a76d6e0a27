"""Connecting to NATS with a bounded budget and errors that say what is wrong.

nats-py's defaults retry a dead server or a wrong password for about two minutes before
giving up. We make a few short attempts ourselves, fail at once on an authentication
error, and only then turn on nats-py's reconnection for the life of the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
from collections.abc import Awaitable, Coroutine, Sequence
from typing import Any, TypeVar

import nats
import nats.errors
from nats.aio.client import Client as NATS

from mistral_workflows.core.errors import BrokerConnectionError, ConfigurationError, redact_url
from mistral_workflows.core.urls import check_nats_urls

__all__ = ["connect", "denied", "display_url", "permitted"]

log = logging.getLogger("mistral_workflows")

T = TypeVar("T")

_DENIAL_POLL = 0.05
_PERMISSIONS_VIOLATION = "permissions violation"
_SEE_DOCS = "see docs/security.md for the permissions workers and consumers need"


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
        ConfigurationError: a URL nats-py cannot use (an http:// URL...).
    """
    check_nats_urls(servers)
    _check_credential_options(options)
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
        except Exception as e:
            if not _uses_nkeys(options):
                raise
            # A seed or creds file nats-py cannot read (nkeys errors carry no key material).
            with contextlib.suppress(Exception):
                await _bounded(nc.close(), 1.0)
            raise ConfigurationError(
                f"cannot use the NKey seed or creds file given for NATS at {where} "
                f"({type(e).__name__}); check that the file holds a valid user seed or "
                "the `nsc` output for this user"
            ) from None
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


def _uses_nkeys(options: dict[str, Any]) -> bool:
    return any(options.get(k) for k in ("nkeys_seed", "nkeys_seed_str", "user_credentials"))


def _check_credential_options(options: dict[str, Any]) -> None:
    """Fail before connecting on NKey/creds options nats-py would mishandle.

    nats-py reads `nkeys_seed` and `user_credentials` as file paths: a seed passed there by
    mistake would end up in a "file not found" message, so the value is never repeated.
    """
    if _uses_nkeys(options) and importlib.util.find_spec("nkeys") is None:
        raise ConfigurationError(
            "NKey and creds-file authentication need the nkeys package: "
            "pip install 'mistral-workflows[nkeys]'"
        )
    for key, hint in (
        ("nkeys_seed", "pass the seed itself as nkeys_seed_str"),
        ("user_credentials", "it must name the .creds file made by `nsc generate creds`"),
    ):
        value = options.get(key)
        if isinstance(value, str | os.PathLike) and not os.path.isfile(value):
            raise ConfigurationError(f"{key} names no readable file ({hint})")
    seed = options.get("nkeys_seed_str")
    if seed is not None:
        # Untyped, and optional: only NKey users install it.
        nkeys: Any = importlib.import_module("nkeys")
        try:
            nkeys.from_seed(bytearray(str(seed).strip().encode())).wipe()
        except (nkeys.NkeysError, ValueError, TypeError):
            raise ConfigurationError(
                "nkeys_seed_str is not a valid NKey seed: it should be the 58-character "
                "user seed starting with 'SU' made by `nk -gen user` or `nsc`"
            ) from None


def denied(nc: NATS, since: BaseException | None, *subjects: str) -> str | None:
    """The server's permissions violation reported on `nc` after `since`, if any.

    A denied publish or subscription is not an error in the NATS protocol: the server
    drops it and reports `-ERR 'Permissions Violation ...'` to the client, which nats-py
    keeps as `last_error` (in lower case). With `subjects`, only a violation naming one of
    them counts, or any denied subscription (the replies we wait for then never come).
    """
    error = nc.last_error
    if error is None or error is since:
        return None
    text = str(error).removeprefix("nats: ")
    if _PERMISSIONS_VIOLATION not in text.lower():
        return None
    lowered = text.lower()
    named = any(f'"{s.lower()}"' in lowered for s in subjects)
    if subjects and "subscription" not in lowered and not named:
        return None
    return text


async def permitted(nc: NATS, call: Awaitable[T], subject: str, what: str) -> T:
    """Await a JetStream API request, failing at once if the server denies it.

    A denied request otherwise surfaces as a plain timeout after the JetStream timeout.

    Args:
        nc: The connection the request goes through.
        call: The pending request, e.g. `js.add_consumer(...)`.
        subject: The API subject it publishes on, as named in the server's violation.
        what: What the request does, for the error message.

    Raises:
        BrokerConnectionError: the server reported a permissions violation for it.
    """
    before = nc.last_error
    request = asyncio.ensure_future(call)
    while True:
        try:
            done, _ = await asyncio.wait({request}, timeout=_DENIAL_POLL)
        except BaseException:
            request.cancel()
            raise
        violation = denied(nc, before, subject)
        if done:
            if violation is None or request.exception() is None:
                return request.result()
        elif violation is None:
            continue
        request.cancel()
        raise BrokerConnectionError(
            f"NATS refused {what} ({violation}): the NATS user needs permission to publish "
            f"on {subject} and to subscribe to its reply inbox; {_SEE_DOCS}"
        )


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
