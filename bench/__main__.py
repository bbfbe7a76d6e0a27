"""Run the benchmarks on embedded servers and print the table.

.venv/bin/python -m bench            # full size, writes bench/results.json
.venv/bin/python -m bench --tiny     # a quick pass (what `make test` runs)
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from bench import (
    catchup,
    deadline,
    fanout,
    gateway,
    latency,
    memory,
    overload,
    publish,
    scale,
    sync_task,
    temporal_cost,
    tokens,
    workflow_streams,
)
from bench._common import Row, Servers, report
from mistral_workflows.dev import EmbeddedServers

FULL = {
    "publish": 20_000,
    "sync": 10_000,
    "tokens": 10_000,
    "latency": 2_000,
    "temporal": 2_000,
    "scale": 1_000,
    "deadline": 300,
    "overload": 1_000,
    "memory": 20_000,
    "wfstreams": 2_000,
    "gateway": 2_000,
    "catchup": 1_000,
    "fanout": 200,
}
TINY = {
    "publish": 50,
    "sync": 50,
    "tokens": 250,
    "latency": 20,
    "temporal": 20,
    "scale": 5,
    "deadline": 5,
    "overload": 5,
    "memory": 300,
    "wfstreams": 20,
    "gateway": 20,
    "catchup": 10,
    "fanout": 10,
}
FANOUT_VIEWERS = {"full": (1, 100, 1000), "tiny": (1, 3)}


async def run_all(servers: Servers, sizes: dict[str, int], tiny: bool = False) -> list[Row]:
    rows: list[Row] = []
    rows += await publish.run(servers, sizes["publish"])
    rows += await sync_task.run(servers, sizes["sync"])
    rows += await tokens.run(servers, sizes["tokens"])
    rows += await latency.run(servers, sizes["latency"])
    rows += await temporal_cost.run(servers, sizes["temporal"])
    rows += await scale.run(servers, sizes["scale"])
    rows += await deadline.run(servers, sizes["deadline"])
    rows += await overload.run(servers, sizes["overload"])
    rows += await memory.run(servers, sizes["memory"])
    rows += await workflow_streams.run(servers, sizes["wfstreams"])
    rows += await gateway.run(servers, sizes["gateway"])
    rows += await catchup.run(servers, sizes["catchup"])
    viewers = FANOUT_VIEWERS["tiny" if tiny else "full"]
    rows += await fanout.run(servers, sizes["fanout"], viewers)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="mistral-workflows benchmarks")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, a smoke test")
    args = parser.parse_args()
    sizes = TINY if args.tiny else FULL
    with EmbeddedServers() as embedded:
        servers = Servers(embedded.nats_url, embedded.temporal_address)
        rows = asyncio.run(run_all(servers, sizes, args.tiny))
    path = None if args.tiny else Path(__file__).parent / "results.json"
    print(report(rows, path))


if __name__ == "__main__":
    main()
