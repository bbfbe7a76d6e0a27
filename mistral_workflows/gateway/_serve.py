"""`mistral-workflows gateway`: serve the app with uvicorn, refusing unsafe set-ups."""

from __future__ import annotations

import ipaddress
import logging

from mistral_workflows.core.errors import ConfigurationError
from mistral_workflows.gateway._app import GatewaySettings, create_app

__all__ = ["is_loopback", "serve"]

log = logging.getLogger("mistral_workflows.gateway")

_GRACE = 3


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(settings: GatewaySettings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the gateway until interrupted.

    Raises:
        ConfigurationError: no secret is set and `host` is not a loopback address.
    """
    import uvicorn

    if settings.secret is None:
        if not is_loopback(host):
            raise ConfigurationError(
                f"without a token secret the gateway lets anyone read every event, so it only "
                f"binds to loopback, not {host!r}; set --secret-file or the "
                "MISTRAL_WORKFLOWS_GATEWAY_SECRET variable to require tokens"
            )
        log.warning(
            "mistral_workflows.gateway: development mode: no token secret is set, so any "
            "bearer token (or none) reads every event; listening on loopback only"
        )
    # No access log: browsers pass their token in the URL. Event streams never end by
    # themselves: on shutdown they are cut after a few seconds, and browsers reconnect.
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        access_log=False,
        log_level="info",
        timeout_graceful_shutdown=_GRACE,
    )
