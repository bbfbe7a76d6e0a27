"""Structured log lines: the ids a line concerns as fields of its record, and a formatter
that writes each record as one JSON object.

`bind_log_fields` attaches ids (workflow and task ids) to everything logged in the current
context (an asyncio task and the tasks it starts); `LogFields`, a logging filter, copies
them onto each record, where `JsonFormatter` (or `TextFormatter`, as `key=value`) writes
them along with any `extra=` fields given to the logging call.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import logging
import sys
import types
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import orjson

from mistral_workflows.core.errors import ConfigurationError

__all__ = [
    "LOG_FORMATS",
    "JsonFormatter",
    "LogFields",
    "TextFormatter",
    "bind_log_fields",
    "configure_logging",
    "record_fields",
]

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

_FIELDS: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "mistral_workflows_log_fields", default=types.MappingProxyType({})
)
# The attributes every LogRecord has: anything else on a record is a structured field.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
# A field value is cut to this many characters (ids come from requests).
_MAX_VALUE = 256


@contextlib.contextmanager
def bind_log_fields(**fields: object) -> Iterator[None]:
    """Attach `fields` (None values are left out) to every record logged in this context
    until the block ends; tasks started inside keep them."""
    given = {k: str(v)[:_MAX_VALUE] for k, v in fields.items() if v is not None}
    token = _FIELDS.set({**_FIELDS.get(), **given})
    try:
        yield
    finally:
        _FIELDS.reset(token)


class LogFields(logging.Filter):
    """Copies the fields bound in the current context onto each record (a record's own
    `extra=` fields win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _FIELDS.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def _name_records(logger: logging.Logger) -> None:
    """Give every record of `logger` the fields bound where it was logged, whatever
    handlers the application configures."""
    if not any(isinstance(f, LogFields) for f in logger.filters):
        logger.addFilter(LogFields())


# The library's own loggers (worker side and consumers; the gateway's).
_name_records(logging.getLogger("mistral_workflows"))
_name_records(logging.getLogger("mistral_workflows.gateway"))


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of a record: the attributes a plain record does not have."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, RFC 3339), level, logger, message, the record's
    structured fields, and `exception` with the traceback if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record_fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message key=value ...`, for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = record_fields(record)
        if not fields:
            return text
        pairs = " ".join(f"{k}={orjson.dumps(v, default=str).decode()}" for k, v in fields.items())
        head, newline, rest = text.partition("\n")
        return f"{head} {pairs}{newline}{rest}"


def configure_logging(log_format: str = "text", level: int = logging.INFO) -> logging.Handler:
    """Send log records to stderr, one line each, as text or JSON, with their fields.

    Replaces the root logger's handlers; returns the new handler.

    Raises:
        ConfigurationError: `log_format` is neither "text" nor "json".
    """
    if log_format not in LOG_FORMATS:
        raise ConfigurationError(
            f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}"
        )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(LogFields())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
