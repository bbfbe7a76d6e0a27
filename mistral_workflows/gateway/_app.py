"""The ASGI application: the routes of the official events API over JetStream, and the
live page."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

from nats.aio.client import Client as NATS
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mistral_workflows.consumer import subscribe
from mistral_workflows.core import subjects
from mistral_workflows.core.connection import connect
from mistral_workflows.core.errors import ConfigurationError, MistralWorkflowsError
from mistral_workflows.core.events import StreamEvent
from mistral_workflows.core.filter import EventFilter
from mistral_workflows.gateway._access import Access
from mistral_workflows.gateway._cors import check_origins, origins_from_env
from mistral_workflows.gateway._ops import Operations
from mistral_workflows.gateway._outbox import ReadAhead
from mistral_workflows.gateway._pages import event_pages, execution_pages
from mistral_workflows.gateway._problems import Problem
from mistral_workflows.gateway._query import StreamQuery, list_query, stream_query
from mistral_workflows.gateway._sse import EventPump, EventStreamResponse
from mistral_workflows.gateway._tokens import secret_from_env
from mistral_workflows.gateway._viewer import Fanout

__all__ = ["GatewaySettings", "create_app"]

log = logging.getLogger("mistral_workflows.gateway")

# `events/list` and the tree lookup stop once JetStream says nothing more is stored; a short
# silence also ends them, should that answer never come (stored events come back to back).
_STORED_IDLE = 0.3
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_PAGES = {
    "live.html": "text/html; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
    "patch.js": "text/javascript; charset=utf-8",
    "tasks.js": "text/javascript; charset=utf-8",
}


@dataclass(frozen=True)
class GatewaySettings:
    """How the gateway reads events and checks tokens."""

    nats_url: str = "nats://127.0.0.1:4222"
    secret: bytes | None = field(default_factory=secret_from_env)
    """The token signing secret; by default the `MISTRAL_WORKFLOWS_GATEWAY_SECRET` variable.
    None (given, or the variable unset): development mode, where any token or none reads
    every event, and only connections whose both ends are loopback addresses are answered."""
    stream_name: str = subjects.DEFAULT_STREAM_NAME
    subject_prefix: str = subjects.DEFAULT_PREFIX
    keepalive: float = 15.0
    """Seconds between keep-alive comments on a quiet stream."""
    nats_options: Mapping[str, Any] = field(default_factory=dict)
    read_ahead_bytes: int = 1024 * 1024
    """The most bytes of events read ahead of one client that reads slower than they come
    (a larger event comes alone); NATS is asked for half of it at a time."""
    total_read_ahead_bytes: int = 64 * 1024 * 1024
    """The most bytes of events waiting for all clients together; beyond it, each client
    gets one event at a time until others catch up."""
    cors_origins: tuple[str, ...] = field(default_factory=origins_from_env)
    """Origins (`https://app.example.com`, or `*`) whose pages may read the gateway; by
    default the `MISTRAL_WORKFLOWS_GATEWAY_CORS_ORIGINS` variable (comma-separated). In
    development mode, pages of loopback origins may too."""

    def __post_init__(self) -> None:
        if self.read_ahead_bytes < 2 or self.total_read_ahead_bytes < 1:
            raise ConfigurationError(
                "read_ahead_bytes must be at least 2 and total_read_ahead_bytes at least 1, "
                f"not {self.read_ahead_bytes} and {self.total_read_ahead_bytes}"
            )
        object.__setattr__(self, "cors_origins", check_origins(self.cors_origins))


class _Gateway:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.access = Access(settings.secret)
        self.read_ahead = ReadAhead(settings.read_ahead_bytes, settings.total_read_ahead_bytes)
        self._nc: NATS | None = None
        self.fanout = Fanout(
            lambda: self.nc,
            settings.stream_name,
            settings.subject_prefix,
            self.read_ahead,
            settings.keepalive,
        )

    @property
    def connection(self) -> NATS | None:
        """The NATS connection, None before the gateway starts."""
        return self._nc

    @property
    def nc(self) -> NATS:
        assert self._nc is not None, "the gateway is not started"
        return self._nc

    async def start(self) -> None:
        options = {"name": "mistral-workflows-gateway", **self.settings.nats_options}
        self._nc = await connect(self.settings.nats_url, **options)

    async def stop(self) -> None:
        await self.fanout.close()
        if self._nc is not None:
            await self._nc.close()

    def read(self, wanted: EventFilter, **options: Any) -> AsyncGenerator[StreamEvent, None]:
        return subscribe(
            self.nc,
            **asdict(wanted),
            stream_name=self.settings.stream_name,
            subject_prefix=self.settings.subject_prefix,
            **options,
        )

    async def in_tree(self, exec_id: str, root: str, namespace: str | None) -> bool | None:
        """Whether any run of `exec_id` is in the tree of `root` (None: no event of it).

        Workflow ids can be reused, by runs in different trees: one stored event of the id
        under this root is enough, and reading is confined to the root's runs anyway."""
        mine = EventFilter(
            workflow_exec_id=exec_id, root_workflow_exec_id=root, namespace=namespace
        )
        if await self._stored(mine):
            return True
        any_tree = EventFilter(workflow_exec_id=exec_id, namespace=namespace)
        return False if await self._stored(any_tree) else None

    async def _stored(self, wanted: EventFilter) -> bool:
        events = self.read(wanted, until_caught_up=True, idle_timeout=_STORED_IDLE)
        async with contextlib.aclosing(events):
            async for _ in events:
                return True
        return False


def _gateway(request: Request) -> _Gateway:
    gateway: _Gateway = request.app.state.gateway
    return gateway


async def _stream(request: Request, query: StreamQuery) -> Response:
    gateway = _gateway(request)
    grant = gateway.access.grant(request)
    wanted = await gateway.access.confine(query.filter, grant, gateway.in_tree)
    if not query.late_join:
        return gateway.fanout.viewer(wanted, query).response(_SSE_HEADERS)
    # A late joiner reads its snapshots and its catch-up on a subscription of its own.
    settings = gateway.settings
    pump = EventPump(query.keeps, settings.keepalive, gateway.read_ahead)
    source = gateway.read(
        wanted,
        start_seq=query.start_seq,
        late_join=query.late_join,
        on_gap=pump.on_gap,
        read_ahead_bytes=settings.read_ahead_bytes // 2,
    )
    return EventStreamResponse(pump, source, _SSE_HEADERS)


async def stream_events(request: Request) -> Response:
    """`GET /v1/workflows/events/stream`: the events matching the filters, as SSE."""
    return await _stream(request, stream_query(request.query_params, request.headers))


async def stream_execution(request: Request) -> Response:
    """`GET /v1/workflows/executions/{execution_id}/stream`: one execution's events."""
    execution_id = request.path_params["execution_id"]
    query = stream_query(request.query_params, request.headers, execution_id)
    return await _stream(request, query)


async def list_events(request: Request) -> Response:
    """`GET /v1/workflows/events/list`: stored events, oldest first, a page at a time."""
    gateway = _gateway(request)
    asked = list_query(request.query_params)
    grant = gateway.access.grant(request)
    wanted = await gateway.access.confine(asked.filter, grant, gateway.in_tree)
    events = gateway.read(
        wanted, start_seq=asked.cursor, until_caught_up=True, idle_timeout=_STORED_IDLE
    )
    page: list[dict[str, Any]] = []
    next_cursor = None
    async with contextlib.aclosing(events):
        async for event in events:
            run = asked.workflow_run_id
            if run is not None and event.data.workflow_run_id != run:
                continue
            if len(page) == asked.limit:
                next_cursor = str(event.broker_sequence)
                break
            page.append(event.data.model_dump(mode="json"))
    return JSONResponse({"events": page, "next_cursor": next_cursor})


async def live_page(request: Request) -> Response:
    """`GET /ui/executions/{execution_id}`: the live page of a workflow tree."""
    return _static("live.html")


async def live_script(request: Request) -> Response:
    """The live page's script."""
    return _static("live.js")


async def patch_script(request: Request) -> Response:
    """The live page's JSON-patch applier."""
    return _static("patch.js")


async def tasks_script(request: Request) -> Response:
    """How the live page draws todo lists, working tasks and chat turns."""
    return _static("tasks.js")


def _static(name: str) -> Response:
    text = resources.files("mistral_workflows.gateway").joinpath("static", name).read_text()
    return Response(text, media_type=_PAGES[name], headers={"Cache-Control": "no-cache"})


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    reason = f"{request.method} {request.url.path}: {exc.detail}"
    return Problem(
        exc.status_code, "not_found" if exc.status_code == 404 else "bad_request", reason
    ).response()


async def _library_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MistralWorkflowsError)
    status = 422 if isinstance(exc, ConfigurationError) else 503
    return Problem(status, type(exc).__name__, str(exc)).response()


def create_app(settings: GatewaySettings | None = None) -> Starlette:
    """The gateway as an ASGI application (serve it with uvicorn).

    It connects to NATS when the server starts and closes the connection when it stops.
    It enforces the rules of `mistral-workflows gateway` wherever it is served: tokens
    signed with the settings' secret (by default the `MISTRAL_WORKFLOWS_GATEWAY_SECRET`
    variable) are required; without a secret (development mode) only connections between
    loopback addresses are answered, whatever address the server listens on. It serves
    `/healthz`, `/readyz` and Prometheus `/metrics`, answers the API with a JSON 503 while
    NATS is away, and lets pages of `settings.cors_origins` (plus loopback pages in
    development mode) read it from other origins.

    Raises:
        ConfigurationError: the secret in the variable is shorter than 32 bytes, or a CORS
            origin in the variable is not `scheme://host[:port]`.
    """
    gateway = _Gateway(settings or GatewaySettings())
    if gateway.access.development:
        log.warning(
            "mistral_workflows.gateway: development mode: no token secret is set, so any "
            "bearer token (or none) reads every event; connections from other machines "
            "are refused"
        )

    settings = gateway.settings
    ops = Operations(
        lambda: gateway.connection,
        nats_url=settings.nats_url,
        stream_name=settings.stream_name,
        subject_prefix=settings.subject_prefix,
        cors_origins=settings.cors_origins,
        development=gateway.access.development,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = Starlette(
        routes=[
            Route("/v1/workflows/events/stream", stream_events),
            Route("/v1/workflows/executions/{execution_id:path}/stream", stream_execution),
            Route("/v1/workflows/executions/{execution_id:path}/pages", execution_pages),
            Route("/v1/workflows/events/pages", event_pages),
            Route("/v1/workflows/events/list", list_events),
            Route("/ui/executions/{execution_id:path}", live_page),
            Route("/ui/live.js", live_script),
            *ops.routes,
            Route("/ui/patch.js", patch_script),
            Route("/ui/tasks.js", tasks_script),
        ],
        middleware=ops.middleware,
        exception_handlers={
            **ops.exception_handlers,
            Problem: _problem,
            HTTPException: _http_error,
            MistralWorkflowsError: _library_error,
        },
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    app.state.metrics = ops.metrics
    return app
