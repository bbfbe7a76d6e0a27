"""The ids a request concerns, attached to every log line written while it is served, and
one line when an event stream opens and one when it closes.

There is no access log (browsers pass their token in the URL): these lines name the
stream by its filters only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable

from starlette.datastructures import QueryParams
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mistral_workflows.core.logfields import bind_log_fields

__all__ = ["RequestFields"]

log = logging.getLogger("mistral_workflows.gateway")

# The query parameters that name what a request reads, logged as fields of the same name.
FIELDS = (
    "workflow_exec_id",
    "root_workflow_exec_id",
    "parent_workflow_exec_id",
    "workflow_run_id",
    "namespace",
    "activity_id",
)
_EXECUTION_PATH = "/v1/workflows/executions/"


class RequestFields:
    """ASGI middleware: binds the request's ids as log fields, and logs event streams."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        query = QueryParams(scope.get("query_string", b""))
        fields = {name: query.get(name) for name in FIELDS}
        path: str = scope["path"]
        if path.startswith(_EXECUTION_PATH) and path.endswith("/stream"):
            fields["workflow_exec_id"] = path[len(_EXECUTION_PATH) : -len("/stream")]
        opened: float | None = None

        # Not a coroutine of its own: this runs for every write of every stream.
        def watched(message: Message) -> Awaitable[None]:
            nonlocal opened
            if message["type"] == "http.response.start" and message["status"] == 200:
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                if content_type.startswith(b"text/event-stream"):
                    opened = time.monotonic()
                    log.info("mistral_workflows.gateway: event stream opened")
            return send(message)

        with bind_log_fields(**fields):
            try:
                await self.app(scope, receive, watched)
            finally:
                if opened is not None:
                    log.info(
                        "mistral_workflows.gateway: event stream closed after %.1fs",
                        time.monotonic() - opened,
                    )
