"""`mistral-workflows schema`: write the JSON Schema of the wire format (or of a task's
state model) to a file or to standard output."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mistral_workflows.core.errors import ConfigurationError

__all__ = ["add_schema_command", "render", "run_schema"]

REGENERATE = "mistral-workflows schema --output schema/events.schema.json"


def add_schema_command(commands: Any, formatter: type[argparse.HelpFormatter]) -> None:
    """Register `schema` on the command line's subparsers."""
    schema = commands.add_parser(
        "schema",
        help="write the JSON Schema of the events (or of a task's state model)",
        description="Write the JSON Schema (draft 2020-12) of the event envelope, every event "
        "type and the built-in state models, with the schema version in `x-schema-version`; "
        "--state-model writes the schema of a task's own pydantic state model instead.",
        formatter_class=formatter,
    )
    schema.add_argument("--output", "-o", help="write to this file (default: standard output)")
    schema.add_argument(
        "--state-model",
        metavar="MODULE:NAME",
        help="a pydantic model, as package.module:Model (importable from the current directory)",
    )


def render(schema: dict[str, Any]) -> str:
    """The schema as the committed file spells it: sorted keys, two-space indent, newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _load_model(spec: str) -> type[BaseModel]:
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise ConfigurationError(
            f"--state-model {spec!r} is not MODULE:NAME: give it as package.module:Model"
        )
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigurationError(
            f"--state-model: cannot import module {module_name!r} ({e}): run from the "
            "directory that holds it, or set PYTHONPATH"
        ) from None
    model = getattr(module, name, None)
    if model is None:
        raise ConfigurationError(f"--state-model: module {module_name!r} has no {name!r}")
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ConfigurationError(
            f"--state-model: {spec} is not a pydantic model (a BaseModel subclass)"
        )
    return model


def run_schema(args: argparse.Namespace) -> None:
    """Write the schema that `args` asks for."""
    # Imported here: the other commands need none of the state models.
    from mistral_workflows.schema import document, state_schema

    schema = state_schema(_load_model(args.state_model)) if args.state_model else document()
    text = render(schema)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
