"""Run the benchmarks on embedded servers and print the table.

.venv/bin/python -m bench            # full size, writes bench/results.json
.venv/bin/python -m bench --tiny     # a quick pass (what `make test` runs)
.venv/bin/python -m bench --only fanout   # one benchmark (results.json is left as is)
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
    telemetry,
    temporal_cost,
    tokens,
    workflow_streams,
)
from bench._common import Row, Servers, report
from mistral_workflows.dev import EmbeddedServers

FULL = {
    "publish": 20_000,
    "telemetry": 20_000,
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
    "telemetry": 50,
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


async def run_all(
    servers: Servers, sizes: dict[str, int], tiny: bool = False, only: str | None = None
) -> list[Row]:
    viewers = FANOUT_VIEWERS["tiny" if tiny else "full"]
    benches = {
        "publish": lambda n: publish.run(servers, n),
        "telemetry": lambda n: telemetry.run(servers, n),
        "sync": lambda n: sync_task.run(servers, n),
        "tokens": lambda n: tokens.run(servers, n),
        "latency": lambda n: latency.run(servers, n),
        "temporal": lambda n: temporal_cost.run(servers, n),
        "scale": lambda n: scale.run(servers, n),
        "deadline": lambda n: deadline.run(servers, n),
        "overload": lambda n: overload.run(servers, n),
        "memory": lambda n: memory.run(servers, n),
        "wfstreams": lambda n: workflow_streams.run(servers, n),
        "gateway": lambda n: gateway.run(servers, n),
        "catchup": lambda n: catchup.run(servers, n),
        "fanout": lambda n: fanout.run(servers, n, viewers),
    }
    rows: list[Row] = []
    for name, bench in benches.items():
        if only is None or name == only:
            rows += await bench(sizes[name])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="mistral-workflows benchmarks")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, a smoke test")
    parser.add_argument(
        "--only", choices=sorted(FULL), help="run this benchmark alone (results.json untouched)"
    )
    args = parser.parse_args()
    sizes = TINY if args.tiny else FULL
    with EmbeddedServers() as embedded:
        servers = Servers(embedded.nats_url, embedded.temporal_address)
        rows = asyncio.run(run_all(servers, sizes, args.tiny, args.only))
    path = None if args.tiny or args.only else Path(__file__).parent / "results.json"
    print(report(rows, path))


if __name__ == "__main__":
    main()
