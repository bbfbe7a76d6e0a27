"""CPU cost of `diff` per update for the token-stream state, at 100 vs 10,000 tokens.

Run: .venv/bin/python bench/patch_cost.py

Prints figures only. The state is {"tokens": [...], "text": "..."} and each update appends one
token to both, as an LLM stream does; the shadow shares its strings with the user's state, as the
producer's does. A cost that barely moves with the size means diff is O(change), not O(state).
"""

from __future__ import annotations

import time
from typing import Any

from mistral_workflows.core.diff import diff
from mistral_workflows.core.json_value import to_json
from mistral_workflows.core.patch import apply

_UPDATES = 2_000


def _state(n: int) -> dict[str, Any]:
    tokens = [f" tok{i}" for i in range(n)]
    return {"tokens": tokens, "text": "".join(tokens)}


def per_update_diff(n: int) -> float:
    """CPU seconds of one diff between an n-token shadow and the same state plus one token."""
    user = _state(n)
    shadow = to_json(user)
    user["tokens"].append(" next")
    user["text"] += " next"
    start = time.process_time()
    for _ in range(_UPDATES):
        diff(shadow, user)
    return (time.process_time() - start) / _UPDATES


def stream(n: int, updates: int) -> float:
    """CPU seconds of `updates` full producer steps (diff, then apply to the shadow)."""
    user = _state(n)
    shadow = to_json(user)
    start = time.process_time()
    for i in range(updates):
        user["tokens"].append(f" t{i}")
        user["text"] += f" t{i}"
        shadow = apply(shadow, diff(shadow, user), copy_values=False)
    return time.process_time() - start


def main() -> None:
    small, large = per_update_diff(100), per_update_diff(10_000)
    print(f"diff per update,    100 tokens: {small * 1e6:8.2f} us")
    print(f"diff per update, 10,000 tokens: {large * 1e6:8.2f} us")
    print(f"ratio (10,000 / 100):           {large / small:8.2f}x  (state is 100x larger)")
    total = stream(10_000, 10_000)
    print(f"10,000 updates (diff + apply) from 10,000 tokens: {total:.2f} s CPU")


if __name__ == "__main__":
    main()
