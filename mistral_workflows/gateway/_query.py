"""The query parameters of the event routes, checked and turned into an `EventFilter`.

Every value is data: ids and names reach NATS only through `subjects.token`, so `*`,
`>` or dots in a value never widen a subject filter. `*` as a whole value means "any",
as in the official API.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.datastructures import Headers, QueryParams

from mistral_workflows.core.errors import ConfigurationError
from mistral_workflows.core.events import StreamEvent
from mistral_workflows.core.filter import EventFilter
from mistral_workflows.gateway._problems import invalid

__all__ = ["ListQuery", "StreamQuery", "list_query", "stream_query"]

ANY = "*"
_IDS = ("workflow_exec_id", "root_workflow_exec_id", "parent_workflow_exec_id")
_TEXT = ("workflow_name", "namespace", "activity_name", "activity_id", *_IDS)
_OTHERS = (
    "scope",
    "stream",
    "start_seq",
    "workflow_event_types",
    "metadata_filters",
    "last-event-id",
    "last_event_id",
    "access_token",
    "event_source",
    "late_join",
)
_KNOWN = frozenset((*_TEXT, *_OTHERS))
_MAX_VALUE = 2048
_EVENT_SOURCES = ("DATABASE", "LIVE", "HYBRID")
_MAX_LIMIT = 1000
MAX_SEQUENCE = 2**64 - 1
"""The highest stream sequence JetStream accepts as a start (sequences are uint64)."""
_MAX_DIGITS = len(str(MAX_SEQUENCE))
_MAX_DEPTH = 32
"""How deeply `metadata_filters` values may nest (stored metadata is compared with them)."""


@dataclass(frozen=True, slots=True)
class StreamQuery:
    """What one SSE request asks for."""

    filter: EventFilter
    """What `subscribe` reads: ids, names, stream, scope and event types."""
    metadata: dict[str, Any] = field(default_factory=dict)
    start_seq: int | None = None
    """The first broker sequence to send (inclusive); None: the oldest stored."""
    late_join: bool = False
    """Start with the latest snapshot of each task, then newer events (`start_seq` is None)."""

    def keeps(self, event: StreamEvent) -> bool:
        """The filter `subscribe` does not apply: the metadata."""
        return all(_same(event.metadata.get(k, _MISSING), v) for k, v in self.metadata.items())


@dataclass(frozen=True, slots=True)
class ListQuery:
    """What one `events/list` request asks for."""

    filter: EventFilter
    """The root, execution and namespace asked for."""
    workflow_run_id: str | None
    limit: int
    cursor: int | None


_MISSING = object()


def _same(value: object, wanted: Any) -> bool:
    if value is _MISSING:
        return False
    if value == wanted:
        return True
    # The top-level form carries every value as text: compare with the value's JSON text.
    return isinstance(wanted, str) and not isinstance(value, str) and json.dumps(value) == wanted


def stream_query(
    params: QueryParams, headers: Headers, execution_id: str | None = None
) -> StreamQuery:
    """Check the parameters of a stream request.

    Raises:
        Problem: 422 naming the first bad parameter.
    """
    ids = {name: _text(params, name) for name in _TEXT}
    if execution_id is not None:
        if ids["workflow_exec_id"] not in (None, execution_id):
            raise invalid("workflow_exec_id", "differs from the execution id in the path")
        ids["workflow_exec_id"] = execution_id
        _event_source(params)
    if all(ids[name] is None for name in _IDS):
        raise invalid(
            "workflow_exec_id",
            "give at least one of workflow_exec_id, root_workflow_exec_id or "
            "parent_workflow_exec_id (reading every execution is not offered)",
            "missing",
        )
    wanted = EventFilter(**ids)
    wanted = _with(wanted, "scope", scope=_text(params, "scope"))
    wanted = _with(wanted, "stream", stream=_text(params, "stream"))
    wanted = _with(wanted, "workflow_event_types", event_types=_event_types(params))
    start, late_join = _start(params, headers), _late_join(params)
    if late_join and _integer(params, "start_seq", 0):
        raise invalid("late_join", "give late_join or start_seq, not both")
    # A client reconnecting with its last event id resumes after it, snapshots or not.
    late_join = late_join and start is None
    return StreamQuery(wanted, metadata=_metadata(params), start_seq=start, late_join=late_join)


def list_query(params: QueryParams) -> ListQuery:
    """Check the parameters of a list request.

    Raises:
        Problem: 422 naming the first bad parameter.
    """
    root, exec_id = _text(params, "root_workflow_exec_id"), _text(params, "workflow_exec_id")
    if root is None and exec_id is None:
        raise invalid(
            "root_workflow_exec_id",
            "give root_workflow_exec_id or workflow_exec_id (listing every execution is not "
            "offered)",
            "missing",
        )
    limit = _integer(params, "limit", 100)
    if not 1 <= limit <= _MAX_LIMIT:
        raise invalid("limit", f"must be 1 to {_MAX_LIMIT}, not {limit}")
    cursor = _one(params, "cursor")
    if cursor is not None and not 1 <= _number(cursor) <= MAX_SEQUENCE:
        raise invalid(
            "cursor", f"not a cursor returned by this route (next_cursor): {cursor[:40]!r}"
        )
    wanted = EventFilter(
        root_workflow_exec_id=root, workflow_exec_id=exec_id, namespace=_text(params, "namespace")
    )
    return ListQuery(
        wanted,
        workflow_run_id=_text(params, "workflow_run_id"),
        limit=limit,
        cursor=None if cursor is None else _number(cursor),
    )


def _one(params: QueryParams, name: str) -> str | None:
    values = params.getlist(name)
    if len(values) > 1:
        raise invalid(name, "given more than once")
    return values[0] if values else None


def _text(params: QueryParams, name: str) -> str | None:
    value = _one(params, name)
    if value is None or value == ANY:
        return None
    if not value:
        raise invalid(name, "empty; use * (or leave it out) to match any")
    if len(value) > _MAX_VALUE:
        raise invalid(name, f"longer than {_MAX_VALUE} characters")
    return value


def _with(wanted: EventFilter, parameter: str, **value: Any) -> EventFilter:
    """`wanted` with one more value, checked by `EventFilter`'s own rules."""
    try:
        return replace(wanted, **value)
    except ConfigurationError as e:
        raise invalid(parameter, str(e)) from None


def _event_types(params: QueryParams) -> list[str] | None:
    values = [v for raw in params.getlist("workflow_event_types") for v in raw.split(",") if v]
    return values or None


def _metadata(params: QueryParams) -> dict[str, Any]:
    """Both forms: `metadata_filters=<JSON object>`, and its keys as top-level parameters."""
    filters: dict[str, Any] = {}
    for name in {k for k in params if k not in _KNOWN}:
        value = _one(params, name)
        filters[name] = value
    raw = _one(params, "metadata_filters")
    if raw is not None:
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            raise invalid("metadata_filters", "not JSON; expected an object") from None
        if not isinstance(parsed, Mapping):
            raise invalid("metadata_filters", "expected a JSON object of key: value")
        if _depth(parsed) > _MAX_DEPTH:
            raise invalid("metadata_filters", f"nested deeper than {_MAX_DEPTH} levels")
        filters.update(parsed)
    return filters


def _depth(value: Any) -> int:
    """How deeply `value` nests, counted without recursion."""
    deepest, level = 0, [(value, 1)]
    while level:
        item, depth = level.pop()
        deepest = max(deepest, depth)
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        level.extend((child, depth + 1) for child in children)
    return deepest


def _number(value: str) -> int:
    """A non-negative integer of ASCII digits and at most 20 of them, or -1 (so that
    `int` never meets Unicode digits, signs, underscores or thousands of digits)."""
    if not value or len(value) > _MAX_DIGITS or not value.isascii() or not value.isdigit():
        return -1
    return int(value)


def _integer(params: QueryParams, name: str, default: int) -> int:
    value = _one(params, name)
    if value is None:
        return default
    number = _number(value)
    if number < 0:
        raise invalid(name, f"not an integer of at most {_MAX_DIGITS} digits: {value[:40]!r}")
    return number


def _start(params: QueryParams, headers: Headers) -> int | None:
    """The first sequence to send: `start_seq`, or right after the last event id."""
    start = _integer(params, "start_seq", 0)
    if start > MAX_SEQUENCE:
        raise invalid("start_seq", f"must be 0 to {MAX_SEQUENCE}, not {start}")
    given = [("Last-Event-ID", headers.get("last-event-id"))]
    given += [(name, _one(params, name)) for name in ("last-event-id", "last_event_id")]
    for name, value in given:
        if value is None or value == "":
            continue
        last = _number(value)
        if not 0 <= last < MAX_SEQUENCE:
            raise invalid(
                name, f"must be a broker sequence below {MAX_SEQUENCE}, not {value[:40]!r}"
            )
        start = max(start, last + 1)
    return start or None


def _late_join(params: QueryParams) -> bool:
    value = _one(params, "late_join")
    if value is None or value.lower() in ("false", "0"):
        return False
    if value.lower() in ("true", "1"):
        return True
    raise invalid("late_join", f"must be true or false, not {value[:40]!r}")


def _event_source(params: QueryParams) -> None:
    source = _one(params, "event_source")
    if source is not None and source not in _EVENT_SOURCES:
        raise invalid("event_source", f"must be one of {', '.join(_EVENT_SOURCES)}")
