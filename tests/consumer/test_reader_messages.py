"""What the reader says when JetStream does not answer: a leader election is blamed only
when the server belongs to a cluster."""

from __future__ import annotations

import logging

import nats
import pytest

from mistral_workflows.consumer._reader import Reader, clustered


async def test_a_single_server_is_not_said_to_elect_a_leader(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    nc = await nats.connect(nats_url)
    try:
        assert not clustered(nc)
        reader = Reader(nc, "SOME_STREAM", ["some.subject"])
        with caplog.at_level(logging.WARNING, logger="mistral_workflows"):
            reader._unanswered()
    finally:
        await nc.close()
    (message,) = [r.getMessage() for r in caplog.records]
    assert "did not answer" in message and "'SOME_STREAM'" in message
    assert "leader" not in message and "cluster" not in message
