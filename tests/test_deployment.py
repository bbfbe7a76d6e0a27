"""The production nats-server configuration of docs/deployment.md (deploy/nats-server.conf)
runs as it is: TLS, JetStream with account limits, a tenant's worker and reader confined
to its namespace, the gateway's user reading it too."""

from __future__ import annotations

import gc
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from temporalio.client import Client

from mistral_workflows import BrokerConnectionError, MistralWorkflowsPlugin
from mistral_workflows.dev import NatsServer, TemporalServer
from mistral_workflows.dev._process import find_binary
from mistral_workflows.worker._stream import StreamSettings, provision
from tests.core.test_task import many_tokens
from tests.security.test_tls import make_pki
from tests.support import rebuilt, running_worker, task_events, unique
from tests.workflows import Call, RunActivity

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "nats-server.conf"
PASSWORDS = {
    "NATS_ADMIN_PASSWORD": "admin-secret",
    "NATS_SYS_PASSWORD": "sys-secret",
    "NATS_ACME_WORKER_PASSWORD": "worker-secret",
    "NATS_ACME_READER_PASSWORD": "reader-secret",
    "NATS_GATEWAY_PASSWORD": "gateway-secret",
}
TENANT = "acme"


def templated(directory: Path, port: int, monitor_port: int) -> str:
    """The configuration file with its ports and paths moved into `directory`."""
    text = CONFIG.read_text()
    moves = {
        "0.0.0.0:4222": f"127.0.0.1:{port}",
        "127.0.0.1:8222": f"127.0.0.1:{monitor_port}",
        "/etc/nats/tls/": f"{directory}/tls/",
        "/var/lib/nats/": f"{directory}/nats/",
    }
    for old, new in moves.items():
        assert old in text, f"deploy/nats-server.conf no longer holds {old!r}"
        text = text.replace(old, new)
    return text


class ConfiguredNats(NatsServer):
    """nats-server started with nothing but the templated configuration file."""

    def __init__(self, directory: Path) -> None:
        super().__init__(store_dir=directory / "nats")
        self._config = templated(directory, self.port, self.monitor_port)

    def _command(self) -> list[str]:
        return [find_binary("nats-server"), "-c", str(self.store_dir / "nats-server.conf")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """nats-server running deploy/nats-server.conf, with the passwords in its environment."""
    directory = tmp_path_factory.mktemp("deploy")
    (directory / "tls").mkdir()
    make_pki(directory / "tls")
    with pytest.MonkeyPatch.context() as env:
        for name, value in PASSWORDS.items():
            env.setenv(name, value)
        with ConfiguredNats(directory) as started:
            yield started


@pytest.fixture(scope="module")
def trusted(server: NatsServer) -> ssl.SSLContext:
    """A TLS context that trusts the test's certificate authority."""
    ca = server.store_dir.parent / "tls" / "ca.pem"
    return ssl.create_default_context(cafile=str(ca))


def login(user: str, variable: str, trusted: ssl.SSLContext, inbox: str | None = None):
    options: dict[str, Any] = {"user": user, "password": PASSWORDS[variable], "tls": trusted}
    if inbox:
        options["inbox_prefix"] = f"_INBOX_{inbox}"
    return options


def url(server: NatsServer) -> str:
    return f"tls://127.0.0.1:{server.port}"


@pytest.fixture(scope="module")
async def streamed(server, trusted) -> tuple[str, Any]:
    """The administrator creates the streams; acme's worker streams one workflow."""
    admin = await nats.connect(url(server), **login("admin", "NATS_ADMIN_PASSWORD", trusted))
    js = admin.jetstream()
    await provision(js, StreamSettings())
    limits = (await js.account_info()).limits
    await admin.close()
    assert (limits.max_streams, limits.max_consumers) == (8, 20000)
    worker = login("acme-worker", "NATS_ACME_WORKER_PASSWORD", trusted, TENANT)
    plugin = MistralWorkflowsPlugin(url(server), nats_options=worker, provision_stream=False)
    with TemporalServer(namespace=TENANT) as temporal:
        client = await Client.connect(temporal.address, namespace=TENANT, plugins=[plugin])
        wid = unique("deploy")
        async with running_worker(client, "deploy-queue", [RunActivity], [many_tokens]):
            result = await client.execute_workflow(
                RunActivity.run, Call("many_tokens", [5]), id=wid, task_queue="deploy-queue"
            )
    return wid, result


async def test_a_tenant_streams_over_tls_through_the_production_config(server, trusted, streamed):
    """acme's reader and the gateway's user rebuild the state acme's worker streamed."""
    wid, result = streamed
    reader = login("acme-reader", "NATS_ACME_READER_PASSWORD", trusted, TENANT)
    gateway = login("gateway", "NATS_GATEWAY_PASSWORD", trusted, "gateway")
    for options in (reader, gateway):
        events = await task_events(
            url(server), namespace=TENANT, workflow_exec_id=wid, nats_options=options
        )
        (task,) = rebuilt(events)
        assert task.state == result


@pytest.mark.timeout(60)
async def test_a_reader_is_refused_other_namespaces(server, trusted, streamed):
    """Negative control: acme's reader may not read another namespace."""
    reader = login("acme-reader", "NATS_ACME_READER_PASSWORD", trusted, TENANT)
    with pytest.raises(BrokerConnectionError, match="NATS refused"):
        await task_events(url(server), namespace="other", nats_options=reader)


@pytest.fixture(autouse=True)
def collect_refused_connections() -> Iterator[None]:
    """nats-py leaves the streams of a refused connection to the garbage collector: collect
    them after each test here, where their ResourceWarning is expected, rather than in
    whichever later test the collector happens to run."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


async def test_plain_connections_and_wrong_passwords_are_refused(server, trusted):
    """Without TLS, or with a wrong password, no connection is made."""
    with pytest.raises(Exception):  # noqa: B017 - nats-py raises several kinds here
        await nats.connect(
            f"nats://127.0.0.1:{server.port}",
            connect_timeout=2,
            max_reconnect_attempts=0,
            allow_reconnect=False,
        )
    wrong = {**login("acme-reader", "NATS_ACME_READER_PASSWORD", trusted), "password": "x"}
    with pytest.raises(Exception):  # noqa: B017
        await nats.connect(
            url(server), connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=0, **wrong
        )
