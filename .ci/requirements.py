"""Prints the core dependencies pinned at the lowest versions pyproject.toml allows, one a
line, for the CI job that installs them (.ci/run).

Each core dependency must have a `>=` floor: a dependency without one fails here, so the
lowest-versions job cannot silently test the newest release instead.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def main() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    for requirement in project["dependencies"]:
        floor = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9][^,;]*)(,<[^;]*)?", requirement)
        if floor is None:
            sys.exit(f"{requirement!r} has no `>=` floor: give it one in pyproject.toml")
        print(f"{floor[1]}=={floor[2]}")


if __name__ == "__main__":
    main()
