"""An HTTP/SSE gateway with the routes and message shape of Mistral Workflows' events API,
and a live page of a workflow tree.

The server needs the `gateway` extra (`pip install 'mistral-workflows[gateway]'`)::

    mistral-workflows gateway --nats-url nats://127.0.0.1:4222 --port 8000

Tokens are made with the standard library only, so `mistral-workflows token` works
without the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mistral_workflows.core.errors import TokenError
from mistral_workflows.gateway._tokens import (
    SECRET_ENV,
    Grant,
    check_secret,
    mint_token,
    secret_from_env,
    verify_token,
)

if TYPE_CHECKING:
    from mistral_workflows.gateway._app import GatewaySettings, create_app
    from mistral_workflows.gateway._serve import serve

__all__ = [
    "SECRET_ENV",
    "GatewaySettings",
    "Grant",
    "TokenError",
    "check_secret",
    "create_app",
    "mint_token",
    "secret_from_env",
    "serve",
    "verify_token",
]

_SERVER = {"GatewaySettings": "_app", "create_app": "_app", "serve": "_serve"}


def __getattr__(name: str) -> Any:
    # The server's names are imported on first use, so that minting a token needs no extra.
    module = _SERVER.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        import prometheus_client  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ModuleNotFoundError as e:
        raise ImportError(
            f"the gateway needs {e.name}: pip install 'mistral-workflows[gateway]'"
        ) from e
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
