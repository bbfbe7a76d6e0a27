"""`mistral-workflows gateway`: serve the app with uvicorn, refusing unsafe set-ups."""

from __future__ import annotations

from mistral_workflows.core.errors import ConfigurationError
from mistral_workflows.core.logfields import configure_logging
from mistral_workflows.gateway._access import is_loopback
from mistral_workflows.gateway._app import GatewaySettings, create_app

__all__ = ["serve"]

_GRACE = 3


def serve(
    settings: GatewaySettings, host: str = "127.0.0.1", port: int = 8000, log_format: str = "text"
) -> None:
    """Run the gateway until interrupted, logging to stderr as text or JSON lines
    (`log_format`), each line with the ids of the request it concerns.

    Raises:
        ConfigurationError: no secret is set and `host` is not a loopback address.
    """
    import uvicorn

    # The app refuses other machines' connections in development mode by itself; binding
    # elsewhere would only serve refusals, so it is a mistake said at once.
    if settings.secret is None and not is_loopback(host):
        raise ConfigurationError(
            f"without a token secret the gateway lets anyone read every event, so it only "
            f"binds to loopback, not {host!r}; set --secret-file or the "
            "MISTRAL_WORKFLOWS_GATEWAY_SECRET variable to require tokens"
        )
    configure_logging(log_format)
    # No access log: browsers pass their token in the URL. Event streams never end by
    # themselves: on shutdown they are cut after a few seconds, and browsers reconnect.
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        access_log=False,
        log_level="info",
        log_config=None,
        timeout_graceful_shutdown=_GRACE,
    )
