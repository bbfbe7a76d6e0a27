"""Every event says where it came from: workflow, root, parent, run and activity attempt."""

from __future__ import annotations

from temporalio.client import Client

import mistral_workflows as workflows
from mistral_workflows.core.task import Task
from tests.support import plugged_client, running_worker, task_events, unique
from tests.workflows import Call, Parent, RunActivity


@workflows.activity(name="Report where I run")
async def report() -> str:
    async with Task(type="where", state={"ok": True}):
        pass
    return "ok"


def origin(event) -> tuple:
    d = event.data
    return (d.workflow_exec_id, d.root_workflow_exec_id, d.parent_workflow_exec_id)


async def test_child_workflow_activity_carries_root_and_parent(
    temporal_address, nats_url, task_queue
):
    """A child's activity names the child, the root and the parent; the parent's its own."""
    client = await plugged_client(temporal_address, nats_url)
    root = unique("root")
    async with running_worker(client, task_queue, [Parent, RunActivity], [report]):
        await client.execute_workflow(
            Parent.run, Call("Report where I run"), id=root, task_queue=task_queue
        )
    events = await task_events(nats_url, root_workflow_exec_id=root)
    child = f"{root}-child"
    assert {origin(e) for e in events} == {(root, root, None), (child, root, root)}
    for e in events:
        assert e.workflow_context.root_workflow_exec_id == root
        assert e.workflow_context.namespace == "default"
        assert e.activity_context.activity_name == "Report where I run"
        assert e.activity_context.attempt == 1
    names = {e.data.workflow_exec_id: e.data.workflow_name for e in events}
    assert names == {root: "Parent", child: "RunActivity"}


async def test_local_activity_gets_the_context(temporal_address, nats_url, task_queue):
    """Local activities stream with the workflow's context too."""
    client = await plugged_client(temporal_address, nats_url)
    wid = unique("local")
    async with running_worker(client, task_queue, [RunActivity], [report]):
        await client.execute_workflow(
            RunActivity.run,
            Call("Report where I run", local=True),
            id=wid,
            task_queue=task_queue,
        )
    events = await task_events(nats_url, workflow_exec_id=wid)
    assert len(events) == 2
    assert {origin(e) for e in events} == {(wid, wid, None)}
    assert events[0].data.workflow_run_id and events[0].data.workflow_name == "RunActivity"


async def test_activity_without_header_uses_activity_info(temporal_address, nats_url, task_queue):
    """An activity scheduled by a workflow without the plugin still knows its workflow."""
    plain = await Client.connect(temporal_address)
    plugged = await plugged_client(temporal_address, nats_url)
    wid = unique("no-header")
    activity_queue = f"{task_queue}-activities"
    async with (
        running_worker(plain, task_queue, [RunActivity]),
        running_worker(plugged, activity_queue, activities=[report]),
    ):
        handle = await plain.start_workflow(
            RunActivity.run,
            Call("Report where I run", task_queue=activity_queue),
            id=wid,
            task_queue=task_queue,
        )
        await handle.result()
    events = await task_events(nats_url, workflow_exec_id=wid)
    assert len(events) == 2
    assert {origin(e) for e in events} == {(wid, wid, None)}
    assert events[0].data.workflow_run_id == handle.result_run_id
