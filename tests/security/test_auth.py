"""Authentication: credentials work, wrong ones fail fast and clearly, secrets stay out."""

from __future__ import annotations

import logging
import time

import pytest

from mistral_workflows import BrokerConnectionError, subscribe
from mistral_workflows.core.connection import connect
from mistral_workflows.dev import NatsServer
from tests.core.test_task import many_tokens
from tests.support import plugged_client, rebuilt, running_worker, task_events, unique
from tests.workflows import Call, RunActivity

SECRET = "s3cret-pass"
CONFIG = f'authorization {{ users = [{{ user: "worker", password: "{SECRET}" }}] }}'


async def test_user_and_password_stream_end_to_end(temporal_address, task_queue, tmp_path):
    """A worker and a consumer with the right user and password stream as usual."""
    with NatsServer(store_dir=tmp_path, config=CONFIG) as server:
        options = {"nats_options": {"user": "worker", "password": SECRET}}
        client = await plugged_client(temporal_address, server.url, **options)
        wid = unique("auth")
        async with running_worker(client, task_queue, [RunActivity], [many_tokens]):
            result = await client.execute_workflow(
                RunActivity.run, Call("many_tokens", [5]), id=wid, task_queue=task_queue
            )
        url = f"nats://worker:{SECRET}@127.0.0.1:{server.port}"
        (task,) = rebuilt(await task_events(url, workflow_exec_id=wid))
    assert task.state == result


@pytest.mark.parametrize("password", ["wrong", None])
async def test_wrong_or_missing_password_is_a_fast_clear_error(tmp_path, caplog, password):
    """Bad credentials: an authentication error within seconds; no password in the text."""
    with NatsServer(store_dir=tmp_path, config=CONFIG) as server:
        credentials = {"user": "worker", "password": password} if password else {}
        started = time.monotonic()
        with caplog.at_level(logging.DEBUG), pytest.raises(BrokerConnectionError) as caught:
            await connect(server.url, **credentials)
        elapsed = time.monotonic() - started
    message = str(caught.value)
    assert "refused our credentials" in message and str(server.port) in message
    assert elapsed < 10  # never nats-py's two-minute default
    assert "wrong" not in message and SECRET not in caplog.text


async def test_consumer_with_a_password_in_the_url_never_prints_it(tmp_path):
    """A URL's password does not appear in the error of a consumer refused by the server."""
    with NatsServer(store_dir=tmp_path, config=CONFIG) as server:
        url = f"nats://worker:not-{SECRET}@127.0.0.1:{server.port}"
        with pytest.raises(BrokerConnectionError) as caught:
            async for _ in subscribe(url, idle_timeout=0.5):
                pass
    assert SECRET not in str(caught.value) and "***@" in str(caught.value)


async def test_token_authentication(temporal_address, task_queue, tmp_path):
    """A token works for the worker; a wrong one is refused clearly and not repeated."""
    token = "t0ken-s3cret"
    with NatsServer(store_dir=tmp_path, config=f'authorization {{ token: "{token}" }}') as server:
        client = await plugged_client(temporal_address, server.url, nats_options={"token": token})
        wid = unique("token")
        async with running_worker(client, task_queue, [RunActivity], [many_tokens]):
            await client.execute_workflow(
                RunActivity.run, Call("many_tokens", [3]), id=wid, task_queue=task_queue
            )
        url = f"nats://{token}@127.0.0.1:{server.port}"
        (task,) = rebuilt(await task_events(url, workflow_exec_id=wid))
        assert task.state == {"tokens": [" t0", " t1", " t2"], "text": " t0 t1 t2"}
        with pytest.raises(BrokerConnectionError) as caught:
            await connect(server.url, token="not-the-token")
    assert "refused our credentials" in str(caught.value)
    assert "not-the-token" not in str(caught.value)
