"""Run the benchmarks on embedded servers and print the table.

.venv/bin/python -m bench            # full size, writes bench/results.json
.venv/bin/python -m bench --tiny     # a quick pass (what `make test` runs)
.venv/bin/python -m bench --only publish,sync   # some benchmarks only (table not saved)
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
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


BENCHES: dict[str, Callable[[Servers, int, bool], Awaitable[list[Row]]]] = {
    "publish": lambda servers, n, tiny: publish.run(servers, n),
    "telemetry": lambda servers, n, tiny: telemetry.run(servers, n),
    "sync": lambda servers, n, tiny: sync_task.run(servers, n),
    "tokens": lambda servers, n, tiny: tokens.run(servers, n),
    "latency": lambda servers, n, tiny: latency.run(servers, n),
    "temporal": lambda servers, n, tiny: temporal_cost.run(servers, n),
    "scale": lambda servers, n, tiny: scale.run(servers, n),
    "deadline": lambda servers, n, tiny: deadline.run(servers, n),
    "overload": lambda servers, n, tiny: overload.run(servers, n),
    "memory": lambda servers, n, tiny: memory.run(servers, n),
    "wfstreams": lambda servers, n, tiny: workflow_streams.run(servers, n),
    "gateway": lambda servers, n, tiny: gateway.run(servers, n),
    "catchup": lambda servers, n, tiny: catchup.run(servers, n),
    "fanout": lambda servers, n, tiny: fanout.run(
        servers, n, FANOUT_VIEWERS["tiny" if tiny else "full"]
    ),
}


async def run_all(
    servers: Servers, sizes: dict[str, int], tiny: bool = False, only: list[str] | None = None
) -> list[Row]:
    """Run the benchmarks (`only`: those named, in the table's order)."""
    rows: list[Row] = []
    for name, bench in BENCHES.items():
        if only is None or name in only:
            rows += await bench(servers, sizes[name], tiny)
    return rows


def parse_only(value: str) -> list[str]:
    """The benchmark names of `--only`, checked against the known ones."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown benchmark(s) {', '.join(unknown) or '(none given)'}; "
            f"pick among: {', '.join(BENCHES)}"
        )
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description="mistral-workflows benchmarks")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, a smoke test")
    parser.add_argument(
        "--only",
        type=parse_only,
        metavar="NAME[,NAME]",
        help=f"run only these benchmarks (of: {', '.join(BENCHES)}); the table is printed "
        "but bench/results.json is left as it is",
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
