"""TLS with a certificate authority made in the test: streaming works over TLS, and a
client that does not trust the server's CA gets a clear connection error."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mistral_workflows import BrokerConnectionError
from mistral_workflows.core.connection import connect
from mistral_workflows.dev import NatsServer
from tests.core.test_task import many_tokens
from tests.support import plugged_client, rebuilt, running_worker, task_events, unique
from tests.workflows import Call, RunActivity


def _cert(subject: str, key, issuer_key, issuer_name, *, ca: bool):  # type: ignore[no-untyped-def]
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1, written as PEM files."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = _cert("test CA", ca_key, ca_key, ca_name, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert("127.0.0.1", key, ca_key, ca_name, ca=False)
    files = {
        "ca": directory / "ca.pem",
        "cert": directory / "server.pem",
        "key": directory / "server.key",
    }
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


async def test_streaming_over_tls(temporal_address, task_queue, tmp_path):
    """With the CA trusted, worker and consumer stream over TLS; without it, a clear error."""
    pki = make_pki(tmp_path)
    config = f'tls {{ cert_file: "{pki["cert"]}"\n key_file: "{pki["key"]}" }}'
    with NatsServer(store_dir=tmp_path / "store", config=config) as server:
        trusted = ssl.create_default_context(cafile=str(pki["ca"]))
        url = f"tls://127.0.0.1:{server.port}"
        client = await plugged_client(temporal_address, url, nats_options={"tls": trusted})
        wid = unique("tls")
        async with running_worker(client, task_queue, [RunActivity], [many_tokens]):
            await client.execute_workflow(
                RunActivity.run, Call("many_tokens", [3]), id=wid, task_queue=task_queue
            )
        nc = await connect(url, tls=trusted)
        (task,) = rebuilt(await task_events(nc, workflow_exec_id=wid))
        assert task.state == {"tokens": [" t0", " t1", " t2"], "text": " t0 t1 t2"}
        await nc.close()
        with pytest.raises(BrokerConnectionError, match="cannot connect"):
            await connect(url, attempts=1, tls=ssl.create_default_context())
