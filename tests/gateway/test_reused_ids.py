"""A workflow id reused in several trees: each tree's token reads that tree's runs of it,
and only those."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
import pytest

from mistral_workflows.gateway import mint_token
from tests.gateway import live_workflows
from tests.gateway.gateway_support import SECRET
from tests.support import collect, plugged_client, running_worker, unique

KEY = SECRET.encode()
LIST = "/v1/workflows/events/list"
STREAM = "/v1/workflows/events/stream"


@pytest.fixture(scope="module")
async def reused(nats_url, temporal_address):
    """Id X run first as a root of its own, then as the child of tree B; C another tree."""
    queue = unique("gw-reuse")
    parent, other = unique("tree-b"), unique("tree-c")
    child = f"{parent}-child"  # The id LiveParent gives its child.
    client = await plugged_client(temporal_address, nats_url)
    workflows = [live_workflows.LiveParent, live_workflows.LiveChild]
    activities = [live_workflows.count_steps, live_workflows.write_reply]
    async with running_worker(client, queue, workflows, activities):
        for run, workflow_id in (
            (live_workflows.LiveChild.run, child),
            (live_workflows.LiveChild.run, other),
        ):
            await client.execute_workflow(run, 0.0, id=workflow_id, task_queue=queue)
        await client.execute_workflow(
            live_workflows.LiveParent.run, 0.0, id=parent, task_queue=queue
        )
    runs: dict[str, set[str]] = {}
    for event in await collect(nats_url, workflow_exec_id=child):
        runs.setdefault(event.data.root_workflow_exec_id, set()).add(event.data.workflow_run_id)
    assert set(runs) == {child, parent}, runs
    return child, parent, other, runs


async def _list(url: str, token: str, **params: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(url + LIST, params=params, headers=headers)


async def test_each_tree_reads_its_own_runs_of_a_reused_id(secured_gateway, reused):
    """Tree B's token reads X's run in B although X ran first in its own tree; X's own
    tree token reads only its first run, and gets nothing of B's run."""
    child, parent, _, runs = reused
    url = secured_gateway.url
    for root in (parent, child):
        token = mint_token(KEY, "default", root_workflow_exec_id=root, ttl=60)
        response = await _list(url, token, workflow_exec_id=child, limit="1000")
        assert response.status_code == 200, (root, response.text)
        events = response.json()["events"]
        assert {e["root_workflow_exec_id"] for e in events} == {root}
        assert {e["workflow_run_id"] for e in events} == runs[root]
    mine = mint_token(KEY, "default", root_workflow_exec_id=child, ttl=60)
    (b_run,) = runs[parent]
    response = await _list(url, mine, workflow_exec_id=child, workflow_run_id=b_run)
    assert response.json()["events"] == []


async def test_a_tree_where_the_id_never_ran_gets_403(secured_gateway, reused):
    """Tree C's token, where X never ran, is refused X on both routes (control of the
    refusal the lookup exists for)."""
    child, _, other, _ = reused
    token = mint_token(KEY, "default", root_workflow_exec_id=other, ttl=60)
    response = await _list(secured_gateway.url, token, workflow_exec_id=child)
    assert response.status_code == 403
    assert "another workflow tree" in response.json()["reason"]
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            secured_gateway.url + STREAM, params={"workflow_exec_id": child}, headers=headers
        )
    assert response.status_code == 403
