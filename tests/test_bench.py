"""The benchmarks run (once, at a tiny size): they print figures, they assert nothing."""

from __future__ import annotations

import subprocess
import sys


def test_benchmarks_run_at_a_tiny_size():
    """`python -m bench --tiny` completes and prints every figure of the table."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = (
        "ratio ours / raw",
        "instrumented / bare",
        "growth, token",
        "make_patch / ours",
        "p50 ours - raw",
        "history events added per streamed event",
        "events lost",
        "events stored, of",
        "Workflow Streams p50 / ours p50",
        "gateway",
        "replays / pages, JetStream requests",
        "viewers with every event once, in order",
    )
    for figure in figures:
        assert figure in done.stdout


def test_only_runs_the_named_benchmarks():
    """`--only` runs the benchmarks named and no other; an unknown name is refused with
    the list of known ones."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--only", "publish"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ratio ours / raw" in done.stdout
    assert "growth, token" not in done.stdout  # the tokens benchmark did not run
    refused = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "publish,nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "unknown benchmark(s) nope" in refused.stderr
    known = refused.stderr.rpartition(":")[2]
    assert {"publish", "sync", "tokens", "fanout"} <= {n.strip() for n in known.split(",")}
