"""Helpers of the shared-read tests: lifecycle events of any namespace and tree, SSE readers
that collect the ids of the events they get, and the consumers that read one execution."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx2 as httpx
import nats
import orjson

from mistral_workflows.core import subjects
from mistral_workflows.core.envelope import envelope
from mistral_workflows.core.events import EventType
from mistral_workflows.dev import NatsServer
from mistral_workflows.worker import StreamSettings, provision

STREAM = "/v1/workflows/events/stream"
STARTED = EventType.WORKFLOW_EXECUTION_STARTED
COMPLETED = EventType.WORKFLOW_EXECUTION_COMPLETED
_ID = re.compile(rb"^id: (\d+)$", re.MULTILINE)


@dataclass(frozen=True)
class Place:
    """Where an execution runs: its namespace and the root of its tree."""

    exec_id: str
    namespace: str = "default"
    root: str | None = None


def event(place: Place, kind: EventType, n: int, pad: int = 0) -> tuple[str, bytes]:
    """The subject and body of lifecycle event number `n` of `place`."""
    root = place.root or place.exec_id
    parent = None if root == place.exec_id else root
    attributes: dict[str, object] = {"task_id": place.exec_id, "workflow_name": "W"}
    attributes["input"] = {"type": "json", "value": "x" * pad}
    if kind == COMPLETED:
        attributes = {"task_id": place.exec_id, "result": {"type": "json", "value": n}}
    origin = {
        "workflow_name": "W",
        "workflow_exec_id": place.exec_id,
        "root_workflow_exec_id": root,
        "parent_workflow_exec_id": parent,
        "workflow_run_id": "r",
    }
    body = envelope(
        stream=subjects.LIFECYCLE_STREAM,
        event_type=kind,
        event_id=f"{place.namespace}/{root}/{place.exec_id}/{n}",
        attributes=attributes,
        origin=origin,
        workflow_context={"namespace": place.namespace, **origin},
        activity_context=None,
    )
    subject = subjects.event_subject(
        subjects.DEFAULT_PREFIX,
        namespace=place.namespace,
        stream=subjects.LIFECYCLE_STREAM,
        workflow_name="W",
        root_exec_id=root,
        parent_exec_id=parent,
        exec_id=place.exec_id,
    )
    return subject, orjson.dumps(body)


class Publisher:
    """Publishes events and remembers their broker sequences, per place."""

    def __init__(self, nats_url: str) -> None:
        self._url = nats_url
        self.seqs: dict[Place, list[int]] = {}
        self.kinds: dict[int, EventType] = {}
        self._nc: nats.NATS | None = None

    async def __aenter__(self) -> Publisher:
        self._nc = await nats.connect(self._url)
        await provision(self._nc.jetstream(), StreamSettings())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._nc is not None
        await self._nc.close()

    async def publish(self, place: Place, kind: EventType = STARTED, pad: int = 0) -> int:
        assert self._nc is not None
        n = len(self.seqs.setdefault(place, []))
        ack = await self._nc.jetstream().publish(*event(place, kind, n, pad))
        self.seqs[place].append(ack.seq)
        self.kinds[ack.seq] = kind
        return ack.seq


@dataclass
class Viewer:
    """An SSE client that collects the ids of the events it gets."""

    url: str
    params: Mapping[str, str]
    headers: Mapping[str, str] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)
    raw: bytearray = field(default_factory=bytearray)
    """What came after the last whole message."""
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self, until: int) -> list[int]:
        """Read until `until` events came (the stream is then closed)."""
        async with (
            httpx.AsyncClient(timeout=120) as http,
            http.stream("GET", self.url + STREAM, params=self.params, headers=self.headers) as r,
        ):
            assert r.status_code == 200, await r.aread()
            async for chunk in r.aiter_bytes():
                self.raw += chunk
                self.connected.set()
                whole = self.raw.rfind(b"\n\n") + 2
                self.ids += [int(i) for i in _ID.findall(self.raw, 0, whole)]
                del self.raw[:whole]
                if len(self.ids) >= until:
                    return self.ids
        raise AssertionError(f"the stream ended after {self.ids}")


def ids_in(raw: bytes) -> list[int]:
    """The event ids in raw SSE bytes."""
    return [int(i) for i in _ID.findall(raw)]


def read_socket(sock: socket.socket, last: int, timeout: float = 60) -> bytes:
    """Everything a raw-socket client is sent, until the event of id `last`."""
    sock.settimeout(timeout)
    raw = bytearray()
    end = f"id: {last}\n".encode()
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        raw += chunk
        if end in raw[-(len(chunk) + len(end)) :]:
            break
    return bytes(raw)


def consumers_of(server: NatsServer, exec_id: str) -> int:
    """The consumers on the event stream whose filter names `exec_id`."""
    info = server.monitor("jsz?consumers=true&config=true") or {}
    token = f".{subjects.token(exec_id)}."
    return sum(
        token in (consumer["config"].get("filter_subject") or "")
        for account in info.get("account_details", [])
        for stream in account.get("stream_detail", [])
        if stream["name"] == subjects.DEFAULT_STREAM_NAME
        for consumer in stream.get("consumer_detail") or []
    )
