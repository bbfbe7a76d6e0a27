"""Helpers of the page tests: events published straight to JetStream, and page walks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
import nats
import orjson

from mistral_workflows.core import subjects
from mistral_workflows.core.envelope import envelope
from mistral_workflows.core.events import EventType
from mistral_workflows.worker import StreamSettings, provision
from tests.support import unique

PAGES = "/v1/workflows/events/pages"


async def publish(
    nats_url: str, exec_id: str, n: int, root: str | None = None, namespace: str = "default"
) -> list[int]:
    """Publish `n` STARTED events of `exec_id` (in the tree of `root`, by default its own)
    as a producer would; return their broker sequences."""
    root = root or exec_id
    origin = {
        "workflow_name": "Pages",
        "workflow_exec_id": exec_id,
        "root_workflow_exec_id": root,
        "parent_workflow_exec_id": None if root == exec_id else root,
        "workflow_run_id": f"run-{root}",
    }
    subject = subjects.event_subject(
        subjects.DEFAULT_PREFIX,
        namespace=namespace,
        stream="notes",
        workflow_name="Pages",
        root_exec_id=root,
        parent_exec_id=origin["parent_workflow_exec_id"],
        exec_id=exec_id,
    )
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await provision(js, StreamSettings())
        seqs = []
        for i in range(n):
            body = envelope(
                stream="notes",
                event_type=EventType.CUSTOM_TASK_STARTED,
                event_id=unique("id"),
                attributes={"custom_task_id": f"t{i}", "custom_task_type": "notes"},
                origin=origin,
                workflow_context={"namespace": namespace, **origin},
                activity_context=None,
            )
            ack = await js.publish(subject, orjson.dumps(body))
            seqs.append(ack.seq)
        return seqs
    finally:
        await nc.close()


@dataclass(frozen=True)
class Fetched:
    """One page as a client got it."""

    status: int
    body: bytes
    headers: httpx.Headers

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


async def get_page(url: str, params: dict[str, str], headers: Any = None) -> Fetched:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(url, params=params, headers=headers)
    return Fetched(response.status_code, response.content, response.headers)


async def walk(url: str, params: dict[str, str], headers: Any = None) -> list[Fetched]:
    """Every page from the first, following `next_cursor` while pages are complete."""
    pages: list[Fetched] = []
    cursor: str | None = None
    while True:
        asked = params if cursor is None else {**params, "cursor": cursor}
        page = await get_page(url, asked, headers)
        assert page.status == 200, (page.status, page.body)
        pages.append(page)
        if not page.json["complete"]:
            return pages
        cursor = page.json["next_cursor"]


def sequences_of(pages: list[Fetched]) -> list[int]:
    """The broker sequences of the events of `pages`, in order."""
    return [e["broker_sequence"] for p in pages for e in p.json["events"]]


async def jetstream_requests(nats_url: str) -> int:
    """How many JetStream API requests the server has answered (consumers made, deleted,
    looked up): what serving a page from JetStream costs."""
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().account_info()
        return info.api.total
    finally:
        await nc.close()
