"""Helpers of the stalled-client tests: a backlog of large events, raw-socket clients that
stop reading and reset, and what the gateway holds (consumers, subscriptions, memory)."""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import termios
import time
from collections.abc import Callable
from urllib.parse import urlencode, urlsplit

import nats

from mistral_workflows.core import subjects
from mistral_workflows.dev import NatsServer
from mistral_workflows.worker import StreamSettings, provision
from tests.gateway.gateway_support import foreign_event

STREAM = "/v1/workflows/events/stream"
GATEWAY_NAME = "mistral-workflows-gateway"


async def publish_backlog(nats_url: str, workflow_id: str, count: int, size: int) -> None:
    """Store `count` events of about `size` bytes each for `workflow_id`."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await provision(js, StreamSettings())
        subject, body = foreign_event(workflow_id, "Busy", {"pad": "x" * size})
        for _ in range(count):
            await js.publish(subject, body)
    finally:
        await nc.close()


def stalled_client(gateway_url: str, workflow_id: str) -> socket.socket:
    """Open an event stream on a raw socket with a small receive buffer, and never read it."""
    address = urlsplit(gateway_url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((address.hostname, address.port))
    query = urlencode({"workflow_exec_id": workflow_id})
    sock.sendall(f"GET {STREAM}?{query} HTTP/1.1\r\nHost: {address.netloc}\r\n\r\n".encode())
    return sock


def unread(sock: socket.socket) -> int:
    """How many bytes wait in the socket's receive queue."""
    raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, struct.pack("i", 0))
    return int(struct.unpack("i", raw)[0])


def reset(sock: socket.socket) -> None:
    """Close with a TCP reset (RST) instead of an orderly FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def consumers(server: NatsServer) -> int:
    """The number of consumers on the event stream."""
    info = server.monitor("jsz?consumers=true") or {}
    total = 0
    for account in info.get("account_details", []):
        for stream in account.get("stream_detail", []):
            if stream["name"] == subjects.DEFAULT_STREAM_NAME:
                total += len(stream.get("consumer_detail") or [])
    return total


def gateway_subscriptions(server: NatsServer) -> int:
    """The subscriptions of the gateway's NATS connections: one per reader, plus a few."""
    info = server.monitor("connz?subs=1") or {}
    return sum(
        c.get("subscriptions", 0) for c in info["connections"] if c.get("name") == GATEWAY_NAME
    )


def rss_bytes(pid: int) -> int:
    """The resident memory of a process."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


async def until(check: Callable[[], bool], what: Callable[[], str], timeout: float) -> None:
    """Wait for `check` to hold; after `timeout` seconds fail, saying `what` is the case."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout} s: {what()}")
        await asyncio.sleep(0.1)


def reading_settled(server: NatsServer) -> bool:
    """Whether no consumer on the event stream is being delivered to: each has either
    nothing pending, or no pull request open (its reader waits for its client)."""
    info = server.monitor("jsz?consumers=true") or {}
    for account in info.get("account_details", []):
        for stream in account.get("stream_detail", []):
            for consumer in stream.get("consumer_detail") or []:
                if consumer["num_pending"] and consumer["num_waiting"]:
                    return False
    return True


def delivered_events(server: NatsServer) -> list[int]:
    """How many events each consumer on the event stream has delivered."""
    info = server.monitor("jsz?consumers=true") or {}
    return [
        consumer["delivered"]["consumer_seq"]
        for account in info.get("account_details", [])
        for stream in account.get("stream_detail", [])
        for consumer in stream.get("consumer_detail") or []
    ]
