"""NKey and creds-file (operator/account JWT) authentication against a real nats-server.

Keys and JWTs are made in the test with the `nkeys` package (nats-py's `nkeys` extra), as
`nk` and `nsc` would make them: a seed never appears in an error or a log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from mistral_workflows import BrokerConnectionError, ConfigurationError, subscribe
from mistral_workflows.core.connection import connect
from mistral_workflows.dev import NatsServer, free_port
from tests.core.test_task import many_tokens
from tests.support import plugged_client, rebuilt, running_worker, task_events, unique
from tests.workflows import Call, RunActivity

nkeys = pytest.importorskip("nkeys", reason="NKey tests need nats-py's nkeys extra")

FAST = pytest.mark.timeout(30)


def keypair(prefix: int) -> tuple[str, str]:
    """A new (seed, public key) pair of the given kind (user, account, operator)."""
    seed = nkeys.encode_seed(os.urandom(32), prefix)
    return seed.decode(), nkeys.from_seed(bytearray(seed)).public_key.decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def jwt(issuer_seed: str, subject: str, name: str, nats: dict[str, Any]) -> str:
    """A NATS JWT (v2) for `subject`, signed by the issuer's seed."""
    issuer = nkeys.from_seed(bytearray(issuer_seed.encode()))
    claims = {
        "iat": int(time.time()),
        "iss": issuer.public_key.decode(),
        "name": name,
        "sub": subject,
        "nats": {"version": 2, **nats},
    }
    digest = hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest()
    claims["jti"] = base64.b32encode(digest).decode().rstrip("=")
    header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = f"{header}.{_b64(json.dumps(claims).encode())}"
    return f"{body}.{_b64(issuer.sign(body.encode()))}"


UNLIMITED = {"subs": -1, "data": -1, "payload": -1}
JETSTREAM = {"mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}


class Operator:
    """An operator with one JetStream-enabled account, as `nsc` would set them up."""

    def __init__(self) -> None:
        self.seed, self.public = keypair(nkeys.PREFIX_BYTE_OPERATOR)
        self.account_seed, self.account = keypair(nkeys.PREFIX_BYTE_ACCOUNT)
        self.jwt = jwt(self.seed, self.public, "test-operator", {"type": "operator"})
        limits = {**UNLIMITED, "conn": -1, "imports": -1, "exports": -1, **JETSTREAM}
        nats = {"type": "account", "limits": limits}
        self.account_jwt = jwt(self.seed, self.account, "tenants", nats)
        # JetStream needs a system account in operator mode.
        _, self.system = keypair(nkeys.PREFIX_BYTE_ACCOUNT)
        self.system_jwt = jwt(self.seed, self.system, "SYS", {"type": "account"})

    def config(self) -> str:
        """The server configuration: the operator, and the accounts preloaded in memory."""
        return (
            f"operator: {self.jwt}\nsystem_account: {self.system}\nresolver: MEMORY\n"
            f"resolver_preload: {{ {self.account}: {self.account_jwt}\n"
            f" {self.system}: {self.system_jwt} }}\n"
        )

    def creds(self, path: Path, account_seed: str | None = None) -> Path:
        """A user's .creds file, signed by the account (or by another account's seed)."""
        seed, public = keypair(nkeys.PREFIX_BYTE_USER)
        issuer = account_seed or self.account_seed
        token = jwt(issuer, public, "worker", {"type": "user", "pub": {}, "sub": {}, **UNLIMITED})
        path.write_text(
            f"-----BEGIN NATS USER JWT-----\n{token}\n------END NATS USER JWT------\n\n"
            f"-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        )
        return path


async def stream_three_tokens(temporal_address: str, task_queue: str, url: str, **options: Any):
    """Run a workflow whose activity streams three tokens through a plugged worker."""
    client = await plugged_client(temporal_address, url, nats_options=options)
    wid = unique("nkey")
    async with running_worker(client, task_queue, [RunActivity], [many_tokens]):
        result = await client.execute_workflow(
            RunActivity.run, Call("many_tokens", [3]), id=wid, task_queue=task_queue
        )
    return wid, result


async def test_nkey_seed_streams_end_to_end(temporal_address, task_queue, tmp_path):
    """A worker with an NKey seed streams; a consumer with the seed file reads it all."""
    seed, public = keypair(nkeys.PREFIX_BYTE_USER)
    seed_file = tmp_path / "user.nk"
    seed_file.write_text(seed)
    config = f'authorization {{ users = [{{ nkey: "{public}" }}] }}'
    with NatsServer(store_dir=tmp_path / "store", config=config) as server:
        wid, result = await stream_three_tokens(
            temporal_address, task_queue, server.url, nkeys_seed_str=seed
        )
        options = {"nkeys_seed": str(seed_file)}
        (task,) = rebuilt(await task_events(server.url, workflow_exec_id=wid, nats_options=options))
    assert task.state == result


@FAST
@pytest.mark.parametrize("mistake", ["other-users-seed", "no-credentials"])
async def test_wrong_seed_is_refused_fast_without_printing_it(tmp_path, caplog, mistake):
    """A seed of another user, or none: refused within seconds; the seed is never shown."""
    _, public = keypair(nkeys.PREFIX_BYTE_USER)
    other_seed, _ = keypair(nkeys.PREFIX_BYTE_USER)
    config = f'authorization {{ users = [{{ nkey: "{public}" }}] }}'
    options = {"nkeys_seed_str": other_seed} if mistake == "other-users-seed" else {}
    with NatsServer(store_dir=tmp_path, config=config) as server:
        with caplog.at_level(logging.DEBUG), pytest.raises(BrokerConnectionError) as caught:
            await connect(server.url, **options)
        with pytest.raises(BrokerConnectionError) as consumer:
            async for _ in subscribe(server.url, idle_timeout=0.5, nats_options=options):
                pass
    for message in (str(caught.value), str(consumer.value)):
        assert "refused our credentials" in message and str(server.port) in message
        assert other_seed not in message
    assert other_seed not in caplog.text


@FAST
@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"nkeys_seed_str": "SUA-not-a-seed"}, "nkeys_seed_str is not a valid NKey seed"),
        ({"nkeys_seed": "SEED"}, "nkeys_seed names no readable file"),
        ({"user_credentials": "missing.creds"}, "user_credentials names no readable file"),
    ],
)
async def test_malformed_seed_or_missing_file_is_a_clear_error(caplog, options, named):
    """A malformed seed, a seed where a file is expected, or a missing creds file: a clear
    ConfigurationError before connecting, which never repeats the value."""
    seed, _ = keypair(nkeys.PREFIX_BYTE_USER)
    options = {k: v.replace("SEED", seed) for k, v in options.items()}
    # Refused before any connection attempt: no server is needed.
    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigurationError) as caught:
        await connect(f"nats://127.0.0.1:{free_port()}", **options)
    assert named in str(caught.value)
    for value in options.values():
        assert value not in str(caught.value) and value not in caplog.text


async def test_creds_file_streams_end_to_end(temporal_address, task_queue, tmp_path):
    """Operator/account JWT mode: worker and consumer authenticate with a .creds file."""
    operator = Operator()
    creds = operator.creds(tmp_path / "worker.creds")
    with NatsServer(store_dir=tmp_path / "store", config=operator.config()) as server:
        wid, result = await stream_three_tokens(
            temporal_address, task_queue, server.url, user_credentials=str(creds)
        )
        options = {"user_credentials": str(creds)}
        (task,) = rebuilt(await task_events(server.url, workflow_exec_id=wid, nats_options=options))
    assert task.state == result


@FAST
async def test_creds_of_an_unknown_account_are_refused_fast(tmp_path, caplog):
    """A .creds file signed by an account the server does not know: a clear refusal within
    seconds, and its seed appears nowhere (negative control: the right creds connect)."""
    operator = Operator()
    stranger_seed, _ = keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    wrong = operator.creds(tmp_path / "wrong.creds", account_seed=stranger_seed)
    right = operator.creds(tmp_path / "right.creds")
    with NatsServer(store_dir=tmp_path / "store", config=operator.config()) as server:
        with caplog.at_level(logging.DEBUG), pytest.raises(BrokerConnectionError) as caught:
            await connect(server.url, user_credentials=str(wrong))
        nc = await connect(server.url, user_credentials=str(right))
        await nc.close()
    user_seed = wrong.read_text().split("SEED-----\n")[1].split("\n")[0]
    assert "refused our credentials" in str(caught.value)
    assert user_seed not in str(caught.value) and user_seed not in caplog.text
