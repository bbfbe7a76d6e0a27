"""JSON log lines from the gateway and the CLI, carrying the ids they concern as fields."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from typing import Any

from mistral_workflows.core.logfields import (
    JsonFormatter,
    LogFields,
    TextFormatter,
    bind_log_fields,
)
from tests.gateway.gateway_support import Gateway, gateway_process
from tests.gateway.ops_support import open_stream, publish
from tests.support import unique


def log_lines(gateway: Gateway) -> list[dict[str, Any]]:
    """Every line the gateway logged so far, each parsed as JSON (a line that is not JSON
    fails the test)."""
    assert gateway.log is not None
    # pread: the gateway writes through the same file offset, which must not move.
    fd = gateway.log.fileno()
    text = os.pread(fd, os.fstat(fd).st_size, 0).decode()
    whole = text[: text.rfind("\n") + 1]  # a line being written is left for later
    return [json.loads(line) for line in whole.splitlines()]


async def logged(
    gateway: Gateway, message: str, count: int = 1, within: float = 10
) -> list[dict[str, Any]]:
    """The lines whose message holds `message`, once there are `count` of them."""
    deadline = time.monotonic() + within
    while len(found := [x for x in log_lines(gateway) if message in x["message"]]) < count:
        assert time.monotonic() < deadline, f"no {message!r} in {log_lines(gateway)}"
        await asyncio.sleep(0.05)
    return found


async def test_gateway_logs_json_lines_with_the_ids_of_each_stream(nats_url):
    """With --log-format json every line of the gateway (uvicorn's included) is a JSON
    object; a stream's opening and closing carry its execution id, whether it came as a
    parameter or in the path."""
    by_param, by_path = unique("gw-log"), unique("gw-log")
    await publish(nats_url, by_param, 1)
    await publish(nats_url, by_path, 1)
    with gateway_process(nats_url, None, "--log-format", "json") as gateway:
        async with open_stream(gateway.url, {"workflow_exec_id": by_param}) as stream:
            await stream.wait_for_events(1, 30)
        async with open_stream(
            gateway.url, {}, path=f"/v1/workflows/executions/{by_path}/stream"
        ) as stream:
            await stream.wait_for_events(1, 30)
        closed = await logged(gateway, "event stream closed", 2)
        opened = await logged(gateway, "event stream opened", 2)
        lines = log_lines(gateway)
    assert [x["workflow_exec_id"] for x in opened] == [by_param, by_path]
    assert [x["workflow_exec_id"] for x in closed] == [by_param, by_path]
    for line in opened:
        assert line["level"] == "info" and line["logger"] == "mistral_workflows.gateway"
        assert line["time"].endswith("+00:00")
    assert any(x["logger"].startswith("uvicorn") for x in lines)


def test_cli_logs_json_lines_with_the_ids_it_reads(nats_url):
    """`events --follow --log-format json`: the warning that the stream does not exist yet
    is a JSON line with the execution id the command reads; without the flag it stays a
    plain line."""
    workflow_id = unique("cli-log")
    command = [sys.executable, "-m", "mistral_workflows", "events", "--nats-url", nats_url]
    command += ["--exec", workflow_id, "--stream-name", unique("NO_STREAM"), "--follow"]
    as_json = _first_warning([*command, "--log-format", "json"])
    line = json.loads(as_json)
    assert "does not exist yet" in line["message"]
    assert line["level"] == "warning"
    assert line["workflow_exec_id"] == workflow_id
    plain = _first_warning(command)
    assert "does not exist yet" in plain and not plain.startswith("{")


def _first_warning(command: list[str]) -> str:
    """The first line a following command writes to stderr; the command is then stopped."""
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stderr is not None
            return process.stderr.readline()
        finally:
            process.kill()


def test_a_bad_log_format_in_the_variable_is_named():
    """MISTRAL_WORKFLOWS_LOG_FORMAT=xml stops the command with the variable's name."""
    env = {**os.environ, "MISTRAL_WORKFLOWS_LOG_FORMAT": "xml"}
    done = subprocess.run(
        [sys.executable, "-m", "mistral_workflows", "gateway", "--port", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1
    assert "MISTRAL_WORKFLOWS_LOG_FORMAT" in done.stderr and "'xml'" in done.stderr


def test_bound_fields_reach_records_of_inner_tasks_and_extra_wins():
    """Fields bound around a block reach records logged in tasks started inside it, as JSON
    fields or as text `key="value"`; a call's own `extra=` wins; nothing leaks after."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(LogFields())
    logger = logging.getLogger("tests.logfields")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    async def inner() -> None:
        logger.info("in a task")
        logger.info("own id", extra={"workflow_exec_id": "own"})

    try:
        with (
            bind_log_fields(workflow_exec_id="wf-1", activity_id=None),
            bind_log_fields(root_workflow_exec_id="root-1"),  # nested: both apply
        ):
            asyncio.run(inner())
        logger.info("after")
    finally:
        logger.removeHandler(handler)
    first, own, after = records
    as_json = json.loads(JsonFormatter().format(first))
    assert as_json["workflow_exec_id"] == "wf-1" and as_json["root_workflow_exec_id"] == "root-1"
    assert "activity_id" not in as_json
    assert TextFormatter().format(first) == (
        'INFO tests.logfields: in a task workflow_exec_id="wf-1" root_workflow_exec_id="root-1"'
    )
    assert json.loads(JsonFormatter().format(own))["workflow_exec_id"] == "own"
    assert "workflow_exec_id" not in json.loads(JsonFormatter().format(after))
