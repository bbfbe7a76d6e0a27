"""Checking NATS URLs before connecting, so a wrong one is named at once."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from mistral_workflows.core.errors import ConfigurationError, redact_url

__all__ = ["NATS_SCHEMES", "check_nats_urls"]

# The schemes nats-py connects with: plain TCP, TLS, WebSocket and secure WebSocket.
NATS_SCHEMES = ("nats", "tls", "ws", "wss")
_WEBSOCKET = frozenset({"ws", "wss"})
_SCHEMES_HINT = (
    "NATS URLs start with nats:// (tls:// for TLS, ws:// or wss:// for WebSocket, which "
    "needs the aiohttp package), e.g. nats://127.0.0.1:4222"
)


def check_nats_urls(servers: str | Sequence[str]) -> None:
    """Refuse NATS URLs that nats-py would misread, naming the URL and the schemes that work.

    A URL without a scheme (``127.0.0.1:4222``) is accepted: nats-py reads it as ``nats://``.

    Args:
        servers: One URL or a list of URLs.

    Raises:
        ConfigurationError: no URL, a URL that is not a string or has another scheme
            (``http://``...), a bad port, or WebSocket and plain URLs mixed in one list.
    """
    urls = [servers] if isinstance(servers, str) else servers
    if (
        not isinstance(urls, Sequence)
        or not urls
        or not all(isinstance(url, str) and url.strip() for url in urls)
    ):
        raise ConfigurationError(f"give a NATS URL or a list of them, not {servers!r}")
    schemes = {_scheme(url) for url in urls}
    if len(schemes & _WEBSOCKET) and len(schemes - _WEBSOCKET):
        raise ConfigurationError(
            "the NATS URLs mix WebSocket (ws://, wss://) and plain (nats://, tls://) servers, "
            "which a connection cannot do: use one kind"
        )


def _scheme(url: str) -> str:
    try:
        shown = redact_url(url)
    except ValueError:  # a port that is not a number, with credentials: show neither
        shown = url.split("://", 1)[0] + "://..." if "://" in url else "..."
    if "://" not in url:
        scheme, target = "nats", f"nats://{url}"
    else:
        scheme, target = url.split("://", 1)[0].lower(), url
    if scheme not in NATS_SCHEMES:
        extra = (
            " (the NATS port speaks the NATS protocol, not HTTP)"
            if scheme in ("http", "https")
            else ""
        )
        raise ConfigurationError(
            f"NATS URL {shown!r} has the scheme {scheme + '://'!r}{extra}; {_SCHEMES_HINT}"
        )
    try:
        parts = urlsplit(target)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as e:
        raise ConfigurationError(
            f"NATS URL {shown!r} is malformed ({e}); {_SCHEMES_HINT}"
        ) from None
    if not parts.hostname:
        raise ConfigurationError(f"NATS URL {shown!r} names no host; {_SCHEMES_HINT}")
    return scheme
