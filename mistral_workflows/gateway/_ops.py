"""What an operator needs of the gateway, assembled for the application: the health and
metrics routes, and the middleware for CORS, metrics, log fields and NATS outages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import nats.errors
from nats.aio.client import Client as NATS
from starlette.middleware import Middleware
from starlette.routing import Route

from mistral_workflows.gateway._cors import Cors
from mistral_workflows.gateway._health import NatsGuard, Readiness, unexpected_error
from mistral_workflows.gateway._metrics import GatewayMetrics, MetricsMiddleware
from mistral_workflows.gateway._requestlog import RequestFields

__all__ = ["Operations"]


class Operations:
    """Health, readiness, metrics, CORS and log fields of one application."""

    def __init__(
        self,
        nc: Callable[[], NATS | None],
        *,
        nats_url: str,
        stream_name: str,
        subject_prefix: str,
        cors_origins: tuple[str, ...],
        development: bool,
    ) -> None:
        self.readiness = Readiness(nc, nats_url, stream_name, subject_prefix)
        self.metrics = GatewayMetrics()
        self.metrics.watch_connection(lambda: self.readiness.disconnected() is None)
        self._cors_origins = cors_origins
        self._development = development

    @property
    def routes(self) -> list[Route]:
        """`/healthz`, `/readyz` and `/metrics`."""
        return [
            Route("/healthz", self.readiness.healthz, methods=["GET", "HEAD"]),
            Route("/readyz", self.readiness.readyz, methods=["GET", "HEAD"]),
            Route("/metrics", self.metrics.endpoint, methods=["GET"]),
        ]

    @property
    def middleware(self) -> list[Middleware]:
        """Outermost first: CORS (so that errors reach the pages allowed to read them),
        metrics (which see every answer, refusals included), log fields, the NATS guard."""
        return [
            Middleware(Cors, origins=self._cors_origins, loopback=self._development),
            Middleware(MetricsMiddleware, metrics=self.metrics),
            Middleware(RequestFields),
            Middleware(NatsGuard, readiness=self.readiness),
        ]

    @property
    def exception_handlers(self) -> Mapping[Any, Any]:
        """JSON answers for the errors no route handles (never a plain-text 500)."""
        return {
            TimeoutError: unexpected_error,
            nats.errors.Error: unexpected_error,
            Exception: unexpected_error,
        }
