"""Worker-side log lines name the attempt they concern: every record of the library's
logger made during an activity attempt carries its workflow and activity ids as fields,
whatever handlers the application configured; records made elsewhere carry none."""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio import activity, workflow

import mistral_workflows as workflows
from mistral_workflows.core.task import Task
from tests.support import plugged_client, running_worker, unique

LIBRARY = logging.getLogger("mistral_workflows")


@workflows.activity()
async def logs_during_its_attempt() -> str:
    async with Task(type="log-fields", state={"n": 0}) as task:
        await task.update_state({"n": 1})
        # Stands for any line the library logs while the attempt runs (a re-send, a
        # refused snapshot...): they all go through this logger, in the attempt's context.
        LIBRARY.warning("mistral_workflows: a line of the attempt")
    return activity.info().activity_id


@workflow.defn
class LogFieldsWorkflow:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            logs_during_its_attempt, start_to_close_timeout=timedelta(seconds=30)
        )


async def test_library_lines_of_an_attempt_carry_its_ids(
    temporal_address, nats_url, task_queue, caplog
):
    """The record has workflow_exec_id, root_workflow_exec_id, activity_id and attempt; a
    record logged outside any attempt (the control) has none of them."""
    client = await plugged_client(temporal_address, nats_url)
    wid = unique("log-fields")
    with caplog.at_level(logging.WARNING, logger="mistral_workflows"):
        async with running_worker(
            client, task_queue, [LogFieldsWorkflow], [logs_during_its_attempt]
        ):
            activity_id = await client.execute_workflow(
                LogFieldsWorkflow.run, id=wid, task_queue=task_queue
            )
        LIBRARY.warning("mistral_workflows: a line outside any attempt")
    inside = [r for r in caplog.records if r.getMessage().endswith("a line of the attempt")]
    outside = [r for r in caplog.records if r.getMessage().endswith("outside any attempt")]
    assert len(inside) == 1 and len(outside) == 1
    fields = {k: getattr(inside[0], k, None) for k in ("workflow_exec_id", "activity_id")}
    assert fields == {"workflow_exec_id": wid, "activity_id": activity_id}
    assert getattr(inside[0], "root_workflow_exec_id", None) == wid
    assert getattr(inside[0], "attempt", None) == "1"
    assert not hasattr(outside[0], "workflow_exec_id")
    assert not hasattr(outside[0], "activity_id")
