"""Health: `/healthz` (the process answers), `/readyz` (NATS connected and the stream there),
and a guard that answers the API routes with a JSON 503 while NATS cannot serve them,
within a bounded time, instead of letting a request wait on a broker that is away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js.api import DeliverPolicy
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mistral_workflows.consumer._consumers import (
    consumer_config,
    consumer_name,
    create_consumer,
    delete_consumer,
)
from mistral_workflows.core import subjects
from mistral_workflows.core.connection import display_url
from mistral_workflows.core.errors import BrokerConnectionError
from mistral_workflows.gateway._problems import Problem

__all__ = ["NatsGuard", "Readiness", "Unready", "unexpected_error"]

log = logging.getLogger("mistral_workflows.gateway")

# The routes that read NATS: everything under this path.
API_PREFIX = "/v1/"
# How long JetStream may take to answer the readiness probe.
PROBE_TIMEOUT = 2.0
# While NATS is disconnected, a request that has not begun its response is given this long
# for the connection to come back before it is answered 503.
_OUTAGE_GRACE = 1.0
# A request whose response has not begun after this long while NATS is connected has the
# readiness probe run on its behalf: if JetStream does not answer, it is answered 503.
_SLOW_START = 3.0
_POLL = 0.1
# The `Retry-After` of a 503 (seconds): NATS clients reconnect within about a second.
_RETRY_AFTER = "2"
# Seconds after which the server deletes a probe's consumer that was not deleted.
_PROBE_LEFTOVER = 5.0
# How long a request cut short is given to clean up before its answer is sent anyway.
_CLEANUP = 1.0


@dataclass(frozen=True)
class Unready:
    """Why the gateway cannot serve events now: a short `error` code and a `reason`."""

    error: str
    reason: str

    def response(self) -> Response:
        """The 503 this means for a request, with a hint to retry in a moment."""
        response = Problem(503, self.error, self.reason).response()
        response.headers["Retry-After"] = _RETRY_AFTER
        return response


class Readiness:
    """Tells whether the gateway can serve events: connected to NATS, and JetStream holds
    the stream. `nc` returns the connection (None before the gateway started)."""

    def __init__(
        self, nc: Callable[[], NATS | None], nats_url: str, stream_name: str, prefix: str
    ) -> None:
        self._nc = nc
        self._where = display_url(nats_url)
        self._stream = stream_name
        self._filter = subjects.stream_subjects(prefix)

    def disconnected(self) -> Unready | None:
        """Why NATS cannot be used now, at no cost (None: connected)."""
        nc = self._nc()
        if nc is not None and nc.is_connected:
            return None
        state = "not connected yet" if nc is None else "disconnected; reconnecting"
        return Unready("nats_unavailable", f"NATS at {self._where} is {state}")

    async def check(self) -> Unready | None:
        """Why events cannot be served now (None: ready): NATS disconnected, JetStream not
        answering within `PROBE_TIMEOUT`, or the stream missing.

        The probe creates a consumer of `<prefix>.>` that delivers only new events and deletes
        it: the request every stream makes, so it needs no permission the gateway lacks."""
        unready = self.disconnected()
        if unready is not None:
            return unready
        nc = self._nc()
        assert nc is not None
        config = consumer_config(consumer_name(), [self._filter], DeliverPolicy.NEW, None)
        # Should its deletion be lost, the server drops it soon by itself.
        config.inactive_threshold = _PROBE_LEFTOVER
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await create_consumer(nc, self._stream, config)
        except nats.js.errors.NotFoundError:
            return Unready(
                "stream_missing",
                f"JetStream stream {self._stream!r} does not exist at {self._where}; a worker "
                "with the plugin creates it when it starts",
            )
        except BrokerConnectionError as e:
            return Unready("nats_denied", str(e))
        except (TimeoutError, nats.errors.Error) as e:
            again = self.disconnected()
            if again is not None:
                return again
            return Unready(
                "jetstream_unavailable",
                f"JetStream at {self._where} did not answer within {PROBE_TIMEOUT:g}s "
                f"({type(e).__name__}); is JetStream enabled, and does its cluster have a "
                "leader?",
            )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(PROBE_TIMEOUT):
                await delete_consumer(nc, self._stream, str(config.name))
        return None

    async def healthz(self, request: Request) -> Response:
        """`GET /healthz`: 200 while the process answers, with the NATS connection's state."""
        connected = self.disconnected() is None
        return JSONResponse(
            {"status": "alive", "nats": "connected" if connected else "disconnected"}
        )

    async def readyz(self, request: Request) -> Response:
        """`GET /readyz`: 200 when events can be served, else 503 with the reason."""
        unready = await self.check()
        if unready is None:
            return JSONResponse({"status": "ready"})
        return unready.response()


class NatsGuard:
    """ASGI middleware: answers the API routes with a JSON 503 while NATS is away.

    A request is refused at once while NATS is disconnected. One that began while NATS was
    connected and has not begun its response is answered 503 once NATS has been away for
    `_OUTAGE_GRACE`, or once JetStream fails the readiness probe after `_SLOW_START`.
    Once a response has begun (an event stream), it is the route's own: an open stream
    stays open through an outage and goes on once NATS is back.
    """

    def __init__(self, app: ASGIApp, readiness: Readiness) -> None:
        self.app = app
        self.readiness = readiness

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith(API_PREFIX)
        unready = self.readiness.disconnected() if api else None
        if unready is not None:
            await unready.response()(scope, receive, send)
            return
        began = asyncio.Event()

        # Not a coroutine of its own: this runs for every write of every stream.
        def tracked(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                began.set()
            return send(message)

        handling = asyncio.ensure_future(self.app(scope, receive, tracked))
        try:
            unready = await self._watch(handling, began) if api else None
            if unready is None:
                await handling
                return
        except Exception as e:
            handling.cancel()
            if began.is_set():
                raise
            await (await unexpected_error(Request(scope), e))(scope, receive, send)
            return
        except BaseException:
            handling.cancel()
            raise
        await self._cut_short(handling)
        if not began.is_set():
            log.warning("mistral_workflows.gateway: %s: %s", unready.error, unready.reason)
            await unready.response()(scope, receive, send)

    @staticmethod
    async def _cut_short(handling: asyncio.Future[None]) -> None:
        """Cancel a request, giving it `_CLEANUP` seconds to end (it is left to end alone
        after that)."""
        handling.cancel()
        await asyncio.wait({handling}, timeout=_CLEANUP)
        if not handling.done():
            _abandoned.add(handling)
            handling.add_done_callback(_abandoned.discard)
        elif not handling.cancelled() and handling.exception() is not None:
            log.debug("mistral_workflows.gateway: request cut short", exc_info=handling.exception())

    async def _watch(self, handling: asyncio.Future[Any], began: asyncio.Event) -> Unready | None:
        """Wait until the response begins or the request ends (None), or until NATS fails
        it (why)."""
        beginning: asyncio.Future[Any] = asyncio.ensure_future(began.wait())
        start = time.monotonic()
        away_since: float | None = None
        probed = False
        try:
            while True:
                await asyncio.wait(
                    {handling, beginning}, timeout=_POLL, return_when=asyncio.FIRST_COMPLETED
                )
                if handling.done() or began.is_set():
                    return None
                now = time.monotonic()
                unready = self.readiness.disconnected()
                if unready is None:
                    away_since = None
                elif away_since is None:
                    away_since = now
                elif now - away_since >= _OUTAGE_GRACE:
                    return unready
                if unready is None and not probed and now - start >= _SLOW_START:
                    probed = True
                    unready = await self.readiness.check()
                    if unready is not None and unready.error != "stream_missing":
                        return unready
        finally:
            beginning.cancel()


_abandoned: set[asyncio.Future[None]] = set()


async def unexpected_error(request: Request, exc: Exception) -> Response:
    """Any error no other handler took: JSON, never a plain-text 500. A timeout or a broker
    error means NATS did not serve the request (503); anything else is logged (500)."""
    if isinstance(exc, TimeoutError | nats.errors.Error):
        reason = f"NATS did not serve the request in time ({type(exc).__name__}); try again"
        return Problem(503, "nats_unavailable", reason).response()
    log.error(
        "mistral_workflows.gateway: %s %s failed", request.method, request.url.path, exc_info=exc
    )
    reason = "the gateway failed to serve the request; its log has the details"
    return Problem(500, "internal_error", reason).response()
