"""The command line as a newcomer meets it: --version, defaults in --help, one flag name
(--nats-url, or NATS_URL), wrong URLs refused, a missing stream named, late joiners shown
the text of finished tasks."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from mistral_workflows import StreamEvent, __version__
from mistral_workflows.core.urls import NATS_SCHEMES
from tests.core.test_task import many_tokens
from tests.support import plugged_client, running_worker, unique
from tests.test_cli import cli, cli_env
from tests.test_cli_auth import THREE_TOKENS, assert_reads_the_tokens, stream_three_tokens
from tests.workflows import Call, RunActivity


def test_version():
    """--version prints the package version."""
    done = cli("--version")
    assert done.returncode == 0 and done.stdout.split() == ["mistral-workflows", __version__]


@pytest.mark.parametrize("command", ["events", "tail", "gateway"])
def test_help_shows_the_defaults_and_hides_the_old_flag(command):
    """Each reading command's help names its defaults (the stream, the format, the NATS
    URL with NATS_URL) and shows --nats-url only, not the old --nats spelling."""
    done = cli(command, "--help")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "(default: WORKFLOW_EVENTS)" in text and "--nats-url URL" in text
    assert "$NATS_URL if set, else nats://127.0.0.1:4222" in text
    assert "--nats " not in text and "--nats," not in text
    if command != "gateway":
        assert "(default: json)" in text or "(default: human)" in text


async def test_nats_url_the_old_flag_and_the_variable_all_reach_the_server(
    temporal_address, nats_url, task_queue
):
    """--nats-url, the old --nats and NATS_URL (when no flag is given) read the same
    events; a flag wins over the variable."""
    wid = await stream_three_tokens(temporal_address, task_queue, nats_url)
    dead = "nats://127.0.0.1:1"
    runs = [
        cli("events", "--nats-url", nats_url, "--exec", wid),
        cli("events", "--nats", nats_url, "--exec", wid),
        cli("events", "--exec", wid, env={"NATS_URL": nats_url}),
        cli("events", "--nats-url", nats_url, "--exec", wid, env={"NATS_URL": dead}),
    ]
    for done in runs:
        assert_reads_the_tokens(done)
    assert {done.stdout for done in runs} == {runs[0].stdout}
    # The control: the variable alone, pointing at nothing, is what the command uses.
    unreachable = cli("events", "--exec", wid, env={"NATS_URL": dead})
    assert unreachable.returncode == 1 and dead in unreachable.stderr


@pytest.mark.parametrize(
    ("flags", "env", "named"),
    [
        (["--nats-url", "http://127.0.0.1:4222"], {}, "--nats-url"),
        ([], {"NATS_URL": "https://nats.example.com"}, "NATS_URL"),
        (["--nats-url", "nats://127.0.0.1:port"], {}, "malformed"),
    ],
)
def test_a_url_nats_cannot_use_is_refused_naming_the_schemes(flags, env, named):
    """A wrong URL is one line, exit 1, naming where it came from and the schemes that
    work, before any connection attempt."""
    done = cli("events", *flags, env=env)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and named in done.stderr
    assert all(f"{scheme}://" in done.stderr for scheme in NATS_SCHEMES)


def test_a_stream_that_does_not_exist_is_an_error(nats_url):
    """events on a stream name that does not exist exits 1 naming it and --follow; the
    same command on the real stream exits 0 (the control)."""
    done = cli("events", "--nats-url", nats_url, "--stream-name", "WORKFLOW_EVENTZ")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "'WORKFLOW_EVENTZ' does not exist" in done.stderr and "--follow" in done.stderr
    control = cli("events", "--nats-url", nats_url, "--exec", unique("none"))
    assert control.returncode == 0, control.stderr


async def test_follow_waits_for_the_stream_to_be_created(temporal_address, nats_url, task_queue):
    """With --follow, a missing stream is waited for, as the command says; the events come
    once a worker creates it."""
    tag = uuid.uuid4().hex[:8]
    stream, prefix, wid = f"FOLLOW_{tag}", f"follow{tag}", unique("follow")
    command = [sys.executable, "-m", "mistral_workflows", "events", "--nats-url", nats_url]
    command += ["--stream-name", stream, "--subject-prefix", prefix, "--exec", wid, "--follow"]
    with subprocess.Popen(  # noqa: ASYNC220 - a test may block on the command's output
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env()
    ) as proc:
        try:
            assert proc.stderr is not None and proc.stdout is not None
            said = proc.stderr.readline()
            assert "does not exist yet; waiting" in said and stream in said
            client = await plugged_client(
                temporal_address, nats_url, stream_name=stream, subject_prefix=prefix
            )
            async with running_worker(client, task_queue, [RunActivity], [many_tokens]):
                await client.execute_workflow(
                    RunActivity.run, Call("many_tokens", [3]), id=wid, task_queue=task_queue
                )
            first = StreamEvent.model_validate_json(proc.stdout.readline())
            assert first.data.workflow_exec_id == wid
        finally:
            proc.terminate()
            proc.wait(timeout=20)


async def test_late_join_human_view_shows_the_text_of_a_finished_task(
    temporal_address, nats_url, task_queue
):
    """A late joiner's human view of a finished task shows its text, as the live view
    showed it, and marks the snapshot instead of printing a missing sequence."""
    wid = await stream_three_tokens(temporal_address, task_queue, nats_url)
    late = cli("events", "--nats-url", nats_url, "--exec", wid, "--late-join", "--format", "human")
    assert late.returncode == 0, late.stderr
    assert "None" not in late.stdout and " snapshot " in late.stdout
    assert f"token-stream: {THREE_TOKENS['text']}\n" in late.stdout
    assert "token-stream completed" in late.stdout
    # The control: the whole history shows the same text, streamed.
    live = cli("events", "--nats-url", nats_url, "--exec", wid, "--format", "human")
    assert f"token-stream: {THREE_TOKENS['text']}\n" in live.stdout
