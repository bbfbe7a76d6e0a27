"""The one place that builds NATS subjects for workflow and activity events.

One JetStream stream captures ``<prefix>.>``. Every event is published on::

    <prefix>.<namespace>.<stream>.<workflow_name>.<root_exec_id>.<parent_exec_id>.<exec_id>.<scope>
    scope = workflow | activity.<activity_name>.<activity_id>.<attempt>

Every value taken from user input (Temporal accepts ``a.b.c``, ``tenantB.>``, newlines or
1,000 characters as a workflow id) goes through `token`, so that it always yields exactly one
valid subject token and two different values never share a token. Consumers filter in the
server with `filter_subject` (through `EventFilter.subject`), which relies on that
one-value-one-token property for isolation.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from mistral_workflows.core.errors import ConfigurationError

if TYPE_CHECKING:
    # Only for annotations: `EventFilter` builds its subject with `filter_subject`.
    from mistral_workflows.core.filter import EventFilter

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_STREAM_NAME",
    "LIFECYCLE_STREAM",
    "NO_PARENT",
    "event_subject",
    "filter_subject",
    "short_repr",
    "snapshot_prefix",
    "snapshot_stream",
    "snapshot_subject",
    "stream_subjects",
    "subject_matches",
    "token",
    "validate_prefix",
    "validate_stream_type",
]

DEFAULT_PREFIX = "workflows"
"""The subject prefix used when none is configured: the stream captures ``workflows.>``."""

DEFAULT_STREAM_NAME = "WORKFLOW_EVENTS"
"""The JetStream stream that stores the events, unless another name is configured."""

LIFECYCLE_STREAM = "_lifecycle"
"""The stream name of the library's own WORKFLOW_* / ACTIVITY_TASK_* events.

It starts with ``_``, which `validate_stream_type` refuses for user Task types, so a user
stream can never be confused with it.
"""

NO_PARENT = "~"
"""The token of a missing parent execution id.

`token` never returns it: a readable token has no ``~`` and a hashed one is longer.
"""

# Every value kept as is is 1-64 characters, so an 11-token subject of readable tokens stays
# far below the server's ~4 KiB control-line limit: an oversized subject makes the server
# close the connection for good, losing every in-flight event, not just that one.
_READABLE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NOT_READABLE_RUN = re.compile(r"[^A-Za-z0-9_-]+")
# 24 characters keep the hint recognisable while a hashed token stays at 24 + 1 + 26 = 51.
_HINT_LENGTH = 24
# 16 bytes (128 bits) make an accidental collision, hence cross-workflow leaking through a
# server-side filter, practically impossible; base32 of 16 bytes is 26 characters unpadded,
# lowercase so the token reads like the rest of the subject.
_DIGEST_SIZE = 16
_TYPE_RULE = (
    "a stream type must be a str of 1-64 characters from A-Z a-z 0-9 _ - that does not start "
    'with \'_\' (reserved for the library), e.g. "token-stream" or "search_results"'
)
_PREFIX_RULE = (
    "a subject prefix must be one or more dot-separated tokens of characters from "
    'A-Z a-z 0-9 _ -, at most 64 characters in total, e.g. "workflows" or "acme.workflows"'
)
_PREFIX = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
_MAX_PREFIX_LENGTH = 64
_REPR_LENGTH = 80


def short_repr(value: object) -> str:
    """``repr(value)``, cut to 80 characters: user input quoted in an error message."""
    text = repr(value)
    if len(text) > _REPR_LENGTH:
        return text[: _REPR_LENGTH - 3] + "..."
    return text


@functools.lru_cache(maxsize=4096)
def token(value: str) -> str:
    """Encode a user-supplied value as exactly one valid NATS subject token.

    Values matching ``[A-Za-z0-9_-]{1,64}`` are returned unchanged. Any other value becomes a
    readable hint (runs of other characters replaced by ``_``, cut to 24 characters), ``~``,
    then the lowercase unpadded base32 of its 128-bit BLAKE2b hash. ``~`` never occurs in a
    readable token, so distinct values give distinct tokens (up to a 128-bit hash collision).

    Args:
        value: Any string, including empty, dotted, wildcard, whitespace or non-ASCII ones.

    Returns:
        A token of 1-64 characters from ``[A-Za-z0-9_~-]``.
    """
    # fullmatch, not ``^...$``: ``$`` also matches before a trailing newline.
    if _READABLE.fullmatch(value):
        return value
    hint = _NOT_READABLE_RUN.sub("_", value)[:_HINT_LENGTH]
    # surrogatepass: Python str may hold lone surrogates, which must hash rather than raise.
    digest = hashlib.blake2b(
        value.encode("utf-8", "surrogatepass"), digest_size=_DIGEST_SIZE
    ).digest()
    return f"{hint}~{base64.b32encode(digest).decode('ascii').rstrip('=').lower()}"


def validate_stream_type(name: object) -> str:
    """Check that a user Task type can be used as the stream token as is.

    Args:
        name: The candidate type name.

    Returns:
        ``name``, unchanged.

    Raises:
        ConfigurationError: ``name`` is not a str of 1-64 characters from
            ``[A-Za-z0-9_-]`` or it starts with ``_``.
    """
    if not isinstance(name, str) or not _READABLE.fullmatch(name) or name.startswith("_"):
        raise ConfigurationError(f"invalid stream type {short_repr(name)}: {_TYPE_RULE}")
    return name


def validate_prefix(prefix: object) -> str:
    """Check a subject prefix.

    Args:
        prefix: The candidate prefix, e.g. ``"workflows"`` or ``"acme.workflows"``.

    Returns:
        ``prefix``, unchanged.

    Raises:
        ConfigurationError: ``prefix`` is not a str of dot-separated ``[A-Za-z0-9_-]+``
            tokens of at most 64 characters in total.
    """
    if (
        not isinstance(prefix, str)
        or len(prefix) > _MAX_PREFIX_LENGTH
        or not _PREFIX.fullmatch(prefix)
    ):
        raise ConfigurationError(f"invalid subject prefix {short_repr(prefix)}: {_PREFIX_RULE}")
    return prefix


def stream_subjects(prefix: str) -> str:
    """Return the subject filter the JetStream stream captures.

    Args:
        prefix: A prefix accepted by `validate_prefix`.

    Returns:
        ``"<prefix>.>"``.
    """
    return f"{prefix}.>"


def snapshot_prefix(prefix: str) -> str:
    """The subject prefix of task snapshots (a sibling of `prefix`, never inside it)."""
    return f"{prefix}_state"


def snapshot_stream(stream_name: str) -> str:
    """The name of the stream that keeps the latest snapshot of each task."""
    return f"{stream_name}_STATE"


def snapshot_subject(prefix: str, event_subject: str, task_id: str) -> str:
    """The subject of a task's snapshots: its event subject under the snapshot prefix, plus
    the task id, so that the stream can keep one (the latest) per task and attempt."""
    return f"{snapshot_prefix(prefix)}{event_subject[len(prefix) :]}.{token(task_id)}"


def event_subject(
    prefix: str,
    *,
    namespace: str,
    stream: str,
    workflow_name: str,
    root_exec_id: str,
    parent_exec_id: str | None,
    exec_id: str,
    activity_name: str | None = None,
    activity_id: str | None = None,
    attempt: int | None = None,
) -> str:
    """Build the subject of one event.

    The scope is ``workflow`` when ``activity_name`` is None, otherwise
    ``activity.<activity_name>.<activity_id>.<attempt>``. Every field but ``prefix`` and
    ``attempt`` goes through `token`; ``prefix`` must already be validated.

    Args:
        prefix: A prefix accepted by `validate_prefix`.
        namespace: The Temporal namespace.
        stream: `LIFECYCLE_STREAM` or a type accepted by `validate_stream_type`.
        workflow_name: The workflow type name.
        root_exec_id: The workflow id of the root of the execution tree.
        parent_exec_id: The parent workflow id, or None for a root workflow.
        exec_id: The workflow id of the execution emitting the event.
        activity_name: The activity type name, or None for a workflow-scoped event.
        activity_id: The activity id; required with ``activity_name``.
        attempt: The positive activity attempt number; required with ``activity_name``.

    Returns:
        A subject of 8 tokens (workflow scope) or 11 tokens (activity scope).

    Raises:
        ConfigurationError: The activity fields are given only in part, or ``attempt`` is
            not a positive int.
    """
    parent = NO_PARENT if parent_exec_id is None else token(parent_exec_id)
    base = (
        f"{prefix}.{token(namespace)}.{token(stream)}.{token(workflow_name)}."
        f"{token(root_exec_id)}.{parent}.{token(exec_id)}"
    )
    if activity_name is None:
        if activity_id is not None or attempt is not None:
            raise ConfigurationError("activity_id and attempt require activity_name")
        return f"{base}.workflow"
    if activity_id is None:
        raise ConfigurationError("activity_name requires activity_id")
    if type(attempt) is not int or attempt < 1:
        raise ConfigurationError(
            f"attempt must be a positive int with activity_name, got {short_repr(attempt)}"
        )
    return f"{base}.activity.{token(activity_name)}.{token(activity_id)}.{attempt}"


def filter_subject(prefix: str, wanted: EventFilter) -> str:
    """Build a server-side filter over the events of `event_subject`.

    Each id, name or stream that `wanted` leaves open becomes ``*``; without a scope the
    filter ends in ``.>`` so it covers both scopes.

    Args:
        prefix: A prefix accepted by `validate_prefix`.
        wanted: The filter, its values already checked.

    Returns:
        A subject filter with wildcards, e.g. ``"workflows.default.*.*.*.*.my-id.>"``.
    """
    fields = (
        wanted.namespace,
        wanted.stream,
        wanted.workflow_name,
        wanted.root_workflow_exec_id,
        wanted.parent_workflow_exec_id,
        wanted.workflow_exec_id,
    )
    tokens = _wildcard_tokens(fields)
    if wanted.scope is None:
        return f"{prefix}.{tokens}.>"
    if wanted.scope == "workflow":
        return f"{prefix}.{tokens}.workflow"
    activity = _wildcard_tokens((wanted.activity_name, wanted.activity_id))
    return f"{prefix}.{tokens}.activity.{activity}.*"


def _wildcard_tokens(values: Iterable[str | None]) -> str:
    return ".".join("*" if value is None else token(value) for value in values)


def subject_matches(filter: str, subject: str) -> bool:
    """Tell whether a subject matches a filter, with NATS wildcard semantics.

    ``*`` matches exactly one token; ``>`` as the last filter token matches one or more
    remaining tokens. Both arguments are assumed to be valid subjects.

    Args:
        filter: The filter, e.g. ``"workflows.*.x.>"``.
        subject: A concrete subject, without wildcards.

    Returns:
        True when ``subject`` matches ``filter``.
    """
    filter_tokens = filter.split(".")
    subject_tokens = subject.split(".")
    for index, filter_token in enumerate(filter_tokens):
        if filter_token == ">" and index == len(filter_tokens) - 1:
            return len(subject_tokens) > index
        if index >= len(subject_tokens):
            return False
        if filter_token != "*" and filter_token != subject_tokens[index]:
            return False
    return len(filter_tokens) == len(subject_tokens)
