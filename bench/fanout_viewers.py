"""Many SSE viewers of one execution in one process: the other end of `bench/fanout.py`.

python -m bench.fanout_viewers URL QUERY VIEWERS

Opens VIEWERS connections to URL with the query string QUERY (raw asyncio sockets: the
client must cost far less than the gateway it measures, so that it reads each write as it
comes; it only notes when each piece arrived, and reads the events out of them once all is
over), prints "ready" once every viewer got its first bytes, reads until each saw the
task's completion, prints "done" (before it disconnects), then prints a JSON line:
the delay percentiles (ms, from each event's timestamp to its arrival), the ids of
the events if every viewer got the same ones (else null), how many viewers got them
out of order or repeated, and how many times viewers were cut loose.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import time
from urllib.parse import urlsplit

_EVENT = re.compile(rb"^id: (\d+)\ndata: [^\n]*?\"event_timestamp\":(\d+)", re.MULTILINE)
_DONE = b"CUSTOM_TASK_COMPLETED"
_DEADLINE = float(os.environ.get("FANOUT_DEADLINE", "300"))


class _Viewer(asyncio.Protocol):
    def __init__(self, request: bytes) -> None:
        self.request = request
        self.delays: list[int] = []
        self.behind = 0
        self.error = b""
        self.ids: list[int] = []
        self.pieces: list[tuple[int, bytes]] = []
        self.tail = b""
        self.started = asyncio.get_running_loop().create_future()
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.pieces.append((time.time_ns(), data))
        if not self.started.done():
            self.started.set_result(None)
        # The completion may come split over two pieces.
        seen = self.tail + data[: len(_DONE)]
        if (_DONE in data or _DONE in seen) and not self.done.done():
            self.done.set_result(None)
        self.tail = data[-len(_DONE) :]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)
        if not self.started.done():
            self.started.set_result(None)

    def read(self) -> None:
        """The events out of the pieces, each timed by the piece that completed it."""
        buffer = bytearray()
        for now, data in self.pieces:
            buffer += data
            whole = buffer.rfind(b"\n\n") + 2
            if whole < 2:
                continue
            for seq, stamp in _EVENT.findall(buffer, 0, whole):
                self.ids.append(int(seq))
                self.delays.append(now - int(stamp))
            self.behind += buffer.count(b": behind:", 0, whole)
            error = buffer.find(b"event: error", 0, whole)
            if error >= 0:
                self.error = bytes(buffer[error : buffer.find(b"\n\n", error)])
            del buffer[:whole]
        self.pieces = []


async def main(url: str, query: str, count: int) -> None:
    address = urlsplit(url)
    path = f"/v1/workflows/events/stream?{query}"
    request = f"GET {path} HTTP/1.1\r\nHost: {address.netloc}\r\n\r\n".encode()
    loop = asyncio.get_running_loop()
    viewers: list[_Viewer] = []
    transports = []
    for _ in range(count):
        viewer = _Viewer(request)
        transport, _ = await loop.create_connection(
            lambda v=viewer: v,  # type: ignore[misc]
            address.hostname,
            address.port,
        )
        viewers.append(viewer)
        transports.append(transport)
    await asyncio.wait_for(asyncio.gather(*(v.started for v in viewers)), _DEADLINE)
    print("ready", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(v.done for v in viewers)), _DEADLINE)
    print("done", flush=True)
    for transport in transports:
        transport.close()
    reads = sum(len(v.pieces) for v in viewers)
    for viewer in viewers:
        viewer.read()
    # Without each viewer's first and last event (the task's start and end), as in
    # bench/latency.py: only the paced updates.
    ordered = sorted(d for v in viewers for d in v.delays[1:-1])

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6 if ordered else -1

    lists = {tuple(v.ids) for v in viewers}
    disordered = sum(v.ids != sorted(set(v.ids)) for v in viewers)
    result = {"p50": at(0.5), "p99": at(0.99), "max": at(1.0), "disordered": disordered}
    result |= {"ids": sorted(lists)[0] if len(lists) == 1 else None}
    result |= {"cut_loose": sum(v.behind for v in viewers), "reads": reads}
    result |= {"unfinished": sum(not v.done.done() for v in viewers)}
    result |= {"fewest": min(len(v.ids) for v in viewers)}
    errors = {v.error.decode() for v in viewers if v.error}
    result |= {"errors": sum(bool(v.error) for v in viewers), "error": sorted(errors)[:1]}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
