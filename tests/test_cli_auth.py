"""The CLI's authentication flags against real nats-servers that require them: with the
flag the events are read; without it the server refuses (the control); a bad file is one
clear line and exit status 1."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mistral_workflows import StreamEvent
from mistral_workflows.dev import NatsServer, free_port
from tests.core.test_task import many_tokens
from tests.security.test_tls import make_pki
from tests.support import plugged_client, rebuilt, running_worker, unique
from tests.test_cli import cli
from tests.workflows import Call, RunActivity

THREE_TOKENS = {"tokens": [" t0", " t1", " t2"], "text": " t0 t1 t2"}


async def stream_three_tokens(temporal_address: str, task_queue: str, url: str, **options: Any):
    """Run a workflow whose activity streams three tokens; its workflow id."""
    client = await plugged_client(temporal_address, url, nats_options=options)
    wid = unique("cli-auth")
    async with running_worker(client, task_queue, [RunActivity], [many_tokens]):
        await client.execute_workflow(
            RunActivity.run, Call("many_tokens", [3]), id=wid, task_queue=task_queue
        )
    return wid


def read_events(url: str, wid: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return cli("events", "--nats-url", url, "--exec", wid, "--stream", "token-stream", *flags)


def assert_reads_the_tokens(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stderr
    events = [StreamEvent.model_validate_json(line) for line in done.stdout.splitlines()]
    (task,) = rebuilt(events)
    assert task.state == THREE_TOKENS


def assert_one_line_error(done: subprocess.CompletedProcess[str], *named: str) -> None:
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("mistral-workflows: error:")
    for text in named:
        assert text in done.stderr


async def test_user_and_password_file(temporal_address, task_queue, tmp_path):
    """--user with --password-file reads the events; without them the server refuses."""
    config = 'authorization { users = [{ user: "reader", password: "pa55-word" }] }'
    password = tmp_path / "password"
    password.write_text("pa55-word\n")
    with NatsServer(store_dir=tmp_path / "store", config=config) as server:
        login = {"user": "reader", "password": "pa55-word"}
        wid = await stream_three_tokens(temporal_address, task_queue, server.url, **login)
        flags = ("--user", "reader", "--password-file", str(password))
        assert_reads_the_tokens(read_events(server.url, wid, *flags))
        refused = read_events(server.url, wid)
    assert_one_line_error(refused, "refused our credentials")


async def test_token_file(temporal_address, task_queue, tmp_path):
    """--token-file reads the events; the token is never printed, even when refused."""
    token = tmp_path / "token"
    token.write_text("t0ken-s3cret\n")
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token")
    config = 'authorization { token: "t0ken-s3cret" }'
    with NatsServer(store_dir=tmp_path / "store", config=config) as server:
        wid = await stream_three_tokens(
            temporal_address, task_queue, server.url, token="t0ken-s3cret"
        )
        assert_reads_the_tokens(read_events(server.url, wid, "--token-file", str(token)))
        refused = read_events(server.url, wid, "--token-file", str(wrong))
    assert_one_line_error(refused, "refused our credentials")
    assert "not-the-token" not in refused.stderr


async def test_nkey_seed_file(temporal_address, task_queue, tmp_path):
    """--nkey-seed reads the events; without it the server refuses."""
    nk = pytest.importorskip("tests.security.test_nkeys")
    seed, public = nk.keypair(nk.nkeys.PREFIX_BYTE_USER)
    seed_file = tmp_path / "user.nk"
    seed_file.write_text(seed)
    config = f'authorization {{ users = [{{ nkey: "{public}" }}] }}'
    with NatsServer(store_dir=tmp_path / "store", config=config) as server:
        wid = await stream_three_tokens(
            temporal_address, task_queue, server.url, nkeys_seed_str=seed
        )
        assert_reads_the_tokens(read_events(server.url, wid, "--nkey-seed", str(seed_file)))
        refused = read_events(server.url, wid)
    assert_one_line_error(refused, "refused our credentials")


async def test_creds_file(temporal_address, task_queue, tmp_path):
    """--creds (operator/account JWT mode) reads the events; without it the server refuses."""
    nk = pytest.importorskip("tests.security.test_nkeys")
    operator = nk.Operator()
    creds = operator.creds(tmp_path / "reader.creds")
    with NatsServer(store_dir=tmp_path / "store", config=operator.config()) as server:
        wid = await stream_three_tokens(
            temporal_address, task_queue, server.url, user_credentials=str(creds)
        )
        assert_reads_the_tokens(read_events(server.url, wid, "--creds", str(creds)))
        refused = read_events(server.url, wid)
    assert_one_line_error(refused, "refused our credentials")


async def test_tls_ca(temporal_address, task_queue, tmp_path):
    """--tls-ca trusts a private CA; without it the server's certificate is not trusted."""
    pki = make_pki(tmp_path)
    config = f'tls {{ cert_file: "{pki["cert"]}"\n key_file: "{pki["key"]}" }}'
    with NatsServer(store_dir=tmp_path / "store", config=config) as server:
        trusted = ssl.create_default_context(cafile=str(pki["ca"]))
        url = f"tls://127.0.0.1:{server.port}"
        wid = await stream_three_tokens(temporal_address, task_queue, url, tls=trusted)
        assert_reads_the_tokens(read_events(url, wid, "--tls-ca", str(pki["ca"])))
        refused = read_events(url, wid)
    assert_one_line_error(refused, "cannot connect")


async def test_inbox_prefix(temporal_address, task_queue, tmp_path):
    """--inbox-prefix reads through a user confined to its own inbox; without it, refused."""
    config = """authorization { users = [
      { user: admin, password: admin }
      { user: reader, password: r,
        permissions: { publish: { allow: ["$JS.API.>"] },
                       subscribe: { allow: ["_INBOX_cli.>"] } } } ] }"""
    with NatsServer(store_dir=tmp_path / "store", config=config) as server:
        admin = {"user": "admin", "password": "admin"}
        wid = await stream_three_tokens(temporal_address, task_queue, server.url, **admin)
        url = f"nats://reader:r@127.0.0.1:{server.port}"
        assert_reads_the_tokens(read_events(url, wid, "--inbox-prefix", "_INBOX_cli"))
        refused = read_events(url, wid)
    assert_one_line_error(refused, "NATS refused", "reply inbox")


def _garbage(tmp_path: Path) -> str:
    path = tmp_path / "not-a-ca.pem"
    path.write_text("not a certificate\n")
    return str(path)


def _empty(tmp_path: Path) -> str:
    path = tmp_path / "empty"
    path.write_text("\n")
    return str(path)


MISSING = "SUAMISSING-FILE-OR-A-SEED-GIVEN-BY-MISTAKE"


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--creds", MISSING], "--creds names no readable file"),
        (["--nkey-seed", MISSING], "--nkey-seed names no readable file"),
        (["--token-file", MISSING], "--token-file names no readable file"),
        (["--user", "u", "--password-file", MISSING], "--password-file names no readable"),
        (["--password-file", "EMPTY"], "--password-file needs --user"),
        (["--token-file", "EMPTY"], "--token-file: the file is empty"),
        (["--tls-ca", MISSING], "--tls-ca names no readable file"),
        (["--tls-ca", "GARBAGE"], "--tls-ca: no CA certificate could be loaded"),
    ],
)
@pytest.mark.parametrize("command", ["events", "tail"])
def test_bad_file_is_a_one_line_error(tmp_path, command, flags, named):
    """A missing, empty or unusable file: one line naming the flag, exit status 1, and a
    secret flag's value (maybe the secret itself) is not repeated."""
    files = {"EMPTY": _empty(tmp_path), "GARBAGE": _garbage(tmp_path)}
    flags = [files.get(f, f) for f in flags]
    done = cli(command, "--nats-url", f"nats://127.0.0.1:{free_port()}", *flags)
    assert_one_line_error(done, named)
    assert MISSING not in done.stderr
