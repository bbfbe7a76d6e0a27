"""Cross-origin requests (CORS): which web pages of other origins may read the gateway.

Allowed origins are given explicitly (`GatewaySettings.cors_origins`, the `--cors-origin`
flag or the `MISTRAL_WORKFLOWS_GATEWAY_CORS_ORIGINS` variable); in development mode pages
served from this machine (`http://localhost:*`, `http://127.0.0.1:*`, `http://[::1]:*`)
are allowed too. Nothing else is: a request or preflight from another origin gets a JSON
403, so no stream is opened for a page that could not read it anyway.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Awaitable, Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mistral_workflows.core.errors import ConfigurationError
from mistral_workflows.gateway._access import is_loopback
from mistral_workflows.gateway._problems import Problem

__all__ = ["CORS_ENV", "Cors", "check_origins", "origins_from_env"]

log = logging.getLogger("mistral_workflows.gateway")

CORS_ENV = "MISTRAL_WORKFLOWS_GATEWAY_CORS_ORIGINS"
"""Allowed origins, separated by commas or spaces (the `--cors-origin` flags replace it)."""

ALLOWED_METHODS = ("GET", "HEAD", "OPTIONS")
# Request headers a page may send beyond the CORS-safelisted ones: its token, the resume
# point, and what fetch() and EventSource add.
ALLOWED_HEADERS = ("authorization", "last-event-id", "cache-control", "content-type", "accept")
_MAX_AGE = "600"
_ORIGIN = re.compile(r"https?://[^/?#@\s]+")


def check_origins(origins: Iterable[str]) -> tuple[str, ...]:
    """The origins, checked: each `scheme://host[:port]` (http or https, no path), or `*`
    (one string is taken as origins separated by commas or spaces).

    Raises:
        ConfigurationError: naming the first origin that is not one.
    """
    if isinstance(origins, str):
        origins = origins.replace(",", " ").split()
    checked = []
    for origin in origins:
        value = origin.strip().rstrip("/")
        if value != "*" and not _ORIGIN.fullmatch(value):
            raise ConfigurationError(
                f"CORS origin {origin!r} is not an origin: give scheme://host[:port] with "
                "http or https and no path, e.g. https://app.example.com, or * for any page"
            )
        checked.append(value.lower())
    return tuple(checked)


def origins_from_env() -> tuple[str, ...]:
    """The origins of the `MISTRAL_WORKFLOWS_GATEWAY_CORS_ORIGINS` variable (none if unset).

    Raises:
        ConfigurationError: the variable holds something that is not an origin.
    """
    return check_origins(os.environ.get(CORS_ENV, ""))


def _loopback_origin(origin: str) -> bool:
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and is_loopback(parts.hostname or "")


class Cors:
    """ASGI middleware answering preflights and marking the responses to allowed origins.

    A request without an `Origin` header, or from the gateway's own origin (its live page),
    is not cross-origin and passes untouched.
    """

    def __init__(self, app: ASGIApp, origins: Iterable[str], loopback: bool) -> None:
        self.app = app
        self.origins = frozenset(check_origins(origins))
        self.loopback = loopback
        if "*" in self.origins:
            log.warning(
                "mistral_workflows.gateway: CORS allows every origin (*): any web page can "
                "read the gateway with a token its visitor holds"
            )

    def allows(self, origin: str) -> bool:
        """Whether pages of `origin` may read the gateway."""
        origin = origin.lower()
        return (
            "*" in self.origins
            or origin in self.origins
            or (self.loopback and _loopback_origin(origin))
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None or urlsplit(origin).netloc == headers.get("host"):
            await self.app(scope, receive, send)
            return
        if not self.allows(origin):
            await _refuse(
                f"pages of origin {origin!r} may not read this gateway; allow it with "
                f"--cors-origin or the {CORS_ENV} variable"
            )(scope, receive, send)
            return
        method = headers.get("access-control-request-method")
        if scope["method"] == "OPTIONS" and method is not None:
            await self._preflight(origin, method, headers)(scope, receive, send)
            return

        def marked(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out["Access-Control-Allow-Origin"] = origin
                out.add_vary_header("Origin")
            return send(message)

        await self.app(scope, receive, marked)

    def _preflight(self, origin: str, method: str, headers: Headers) -> Response:
        if method.upper() not in ALLOWED_METHODS:
            return _refuse(f"method {method!r} is not allowed; the gateway only reads (GET)")
        asked = headers.get("access-control-request-headers", "")
        names = [name.strip().lower() for name in asked.split(",") if name.strip()]
        refused = [name for name in names if name not in ALLOWED_HEADERS]
        if refused:
            return _refuse(
                f"request header(s) {', '.join(refused)} are not allowed; allowed: "
                f"{', '.join(ALLOWED_HEADERS)}"
            )
        return Response(
            status_code=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": ", ".join(ALLOWED_METHODS),
                "Access-Control-Allow-Headers": ", ".join(ALLOWED_HEADERS),
                "Access-Control-Max-Age": _MAX_AGE,
                "Vary": "Origin",
            },
        )


def _refuse(reason: str) -> Response:
    response = Problem(403, "cors_forbidden", reason).response()
    response.headers["Vary"] = "Origin"
    return response
