"""The `mistral-workflows` command: events as JSON lines, clear one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

from mistral_workflows import StreamEvent
from mistral_workflows.cli import _filter, _parser
from mistral_workflows.core.events import EventType
from mistral_workflows.core.filter import EventFilter
from mistral_workflows.dev import free_port
from tests.consumer.test_subscribe import run


def cli_env(**variables: str) -> dict[str, str]:
    """This environment without the addresses the commands read, plus `variables`."""
    base = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "TEMPORAL_ADDRESS")}
    return {**base, **variables}


def cli(
    *args: str, timeout: float = 30, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mistral_workflows", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(**(env or {})),
    )


async def test_events_prints_json_lines_that_parse_back(temporal_address, nats_url, task_queue):
    """Each line is one envelope with its broker_sequence, readable by the models."""
    wid = await run(temporal_address, nats_url, task_queue)
    done = cli("events", "--nats-url", nats_url, "--exec", wid, "--stream", "alpha")
    assert done.returncode == 0, done.stderr
    events = [StreamEvent.model_validate_json(line) for line in done.stdout.splitlines()]
    assert len(events) == 7 and all(e.data.workflow_exec_id == wid for e in events)
    seqs = [e.broker_sequence for e in events]
    assert seqs == sorted(seqs) and seqs[0] is not None


async def test_from_seq_and_type_filters(temporal_address, nats_url, task_queue):
    """--from-seq and --type narrow the output."""
    wid = await run(temporal_address, nats_url, task_queue)
    first = cli("events", "--nats-url", nats_url, "--exec", wid).stdout.splitlines()
    start = StreamEvent.model_validate_json(first[3]).broker_sequence
    later = cli("events", "--nats-url", nats_url, "--exec", wid, "--from-seq", str(start))
    assert later.stdout.splitlines() == first[3:]
    done = cli(
        "events", "--nats-url", nats_url, "--exec", wid, "--type", EventType.CUSTOM_TASK_COMPLETED
    )
    assert len(done.stdout.splitlines()) == 2


def test_flags_build_the_filter_of_the_same_names():
    """Each filter flag sets the `EventFilter` field its destination names; `tail`, which
    has no id flags, builds a filter without ids."""
    flags = ["--exec", "x", "--root", "r", "--parent", "p", "--workflow-name", "W"]
    flags += ["--namespace", "n", "--stream", "s", "--activity", "a", "--activity-id", "1"]
    flags += ["--type", EventType.CUSTOM_TASK_STARTED, "--scope", "activity"]
    assert _filter(_parser().parse_args(["events", *flags])) == EventFilter(
        workflow_exec_id="x",
        root_workflow_exec_id="r",
        parent_workflow_exec_id="p",
        workflow_name="W",
        activity_name="a",
        activity_id="1",
        stream="s",
        event_types=[EventType.CUSTOM_TASK_STARTED],
        namespace="n",
        scope="activity",
    )
    assert _filter(_parser().parse_args(["tail", "--stream", "s"])) == EventFilter(stream="s")


def test_bad_filter_is_a_one_line_error(nats_url):
    """An unknown event type exits non-zero with one line naming it."""
    done = cli("events", "--nats-url", nats_url, "--type", "NOPE")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "NOPE" in done.stderr


def test_unreachable_server_is_a_one_line_error():
    """A dead NATS URL exits non-zero quickly with one line naming it."""
    url = f"nats://127.0.0.1:{free_port()}"
    done = cli("events", "--nats-url", url, timeout=30)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and url in done.stderr


async def test_late_join_flag_starts_from_snapshots(temporal_address, nats_url, task_queue):
    """--late-join prints each finished task's snapshot instead of its whole history."""
    wid = await run(temporal_address, nats_url, task_queue)
    done = cli("events", "--nats-url", nats_url, "--exec", wid, "--late-join")
    assert done.returncode == 0, done.stderr
    events = [StreamEvent.model_validate_json(line) for line in done.stdout.splitlines()]
    assert [e.data.event_type for e in events] == [EventType.CUSTOM_TASK_COMPLETED] * 2
    assert all(e.metadata["snapshot"] for e in events)
