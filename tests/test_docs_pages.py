"""The reference pages cannot drift: the CLI page comes from the parser, the troubleshooting
page names every error class. (`make docs` builds the site itself, in strict mode.)"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import re
from pathlib import Path
from types import ModuleType

import mistral_workflows
import mistral_workflows.core.errors
import mistral_workflows.gateway
from mistral_workflows.cli import _parser

ROOT = Path(__file__).resolve().parent.parent


def load_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def option_strings(parser: argparse.ArgumentParser) -> dict[str, set[str]]:
    """Each subcommand's flags, "" for the program's own."""
    found = {"": {s for a in parser._actions for s in a.option_strings}}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = {s for a in sub._actions for s in a.option_strings}
    return found


def test_cli_reference_shows_every_command_and_flag():
    """The generated CLI page has a section per command listing each of its flags."""
    page = load_hooks().cli_reference()
    sections = dict(re.findall(r"## `mistral-workflows ?(\S*)`\n\n```text\n(.*?)```", page, re.S))
    flags = option_strings(_parser())
    assert set(sections) == set(flags)
    for command, options in flags.items():
        missing = {o for o in options if not re.search(rf"{re.escape(o)}\b", sections[command])}
        assert not missing, f"`{command}` section lacks {missing}"


def test_cli_page_has_the_marker_the_build_replaces():
    """docs/cli.md keeps the line the docs build replaces with the generated reference."""
    assert load_hooks().CLI_MARKER in (ROOT / "docs" / "cli.md").read_text()


def error_classes() -> set[str]:
    modules = (mistral_workflows, mistral_workflows.core.errors, mistral_workflows.gateway)
    return {
        name
        for module in modules
        for name in module.__all__
        if inspect.isclass(obj := getattr(module, name, None)) and issubclass(obj, Exception)
    }


def test_troubleshooting_explains_every_error_class():
    """Each exported exception class has its own section in docs/troubleshooting.md."""
    page = (ROOT / "docs" / "troubleshooting.md").read_text()
    headings = set(re.findall(r"^## `(\w+)`$", page, re.M))
    classes = error_classes()
    assert len(classes) >= 10
    assert classes - headings == set(), "add a section for each to docs/troubleshooting.md"
    # Negative control: a class without a section would be reported.
    assert {*classes, "NewError"} - headings == {"NewError"}


def test_readme_becomes_the_site_home_with_working_links():
    """docs/ links lose their prefix; links to other repository files become paths."""
    text = "See [docs/task.md](docs/task.md), [bench](bench/README.md), [x](https://e.org)."
    assert load_hooks().readme_for_site(text) == (
        "See [docs/task.md](task.md), bench (`bench/README.md` in the repository), "
        "[x](https://e.org)."
    )
