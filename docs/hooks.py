"""MkDocs hooks of the documentation site (`make docs`).

- The home page is the project's README.md, its links rewritten for the site.
- The command line reference (cli.md) is generated from the `mistral-workflows` parser at
  build time, so it cannot drift from the flags.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLI_MARKER = "<!-- cli-reference -->"
# Help text is wrapped as on a terminal of this width, whatever the building machine's.
HELP_COLUMNS = "88"
_LINK = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")


def readme_for_site(text: str) -> str:
    """README.md with `docs/x.md` links made site-relative and links to other files of the
    repository shown as their paths."""

    def relink(match: re.Match[str]) -> str:
        label, target = match.groups()
        if target.startswith(("http://", "https://", "#")):
            return match.group(0)
        if target.startswith("docs/"):
            return f"[{label}]({target.removeprefix('docs/')})"
        return f"{label} (`{target}` in the repository)"

    return _LINK.sub(relink, text)


@contextlib.contextmanager
def _help_width() -> Iterator[None]:
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        yield
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


def cli_commands() -> dict[str, str]:
    """Each command's `--help` text: "" for the program itself, then each subcommand."""
    import argparse

    from mistral_workflows.cli import _parser

    with _help_width():
        parser = _parser()
        helps = {"": parser.format_help()}
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    helps[name] = sub.format_help()
    return helps


def cli_reference() -> str:
    """The Markdown of every command's help, in the parser's order."""
    parts = []
    for name, text in cli_commands().items():
        title = f"mistral-workflows {name}".strip()
        body = text.replace("```", "'''").rstrip()
        parts.append(f"## `{title}`\n\n```text\n{body}\n```\n")
    return "\n".join(parts)


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    readme = readme_for_site((ROOT / "README.md").read_text(encoding="utf-8"))
    files.append(File.generated(config, "index.md", content=readme))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri == "cli.md":
        if CLI_MARKER not in markdown:
            raise ValueError(f"cli.md lost its {CLI_MARKER} line")
        return markdown.replace(CLI_MARKER, cli_reference())
    return markdown
