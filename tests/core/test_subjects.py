"""Tests of the NATS subject layout and the encoding of hostile user values."""

from __future__ import annotations

import base64
import hashlib
import unicodedata

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mistral_workflows.core.errors import ConfigurationError
from mistral_workflows.core.filter import EventFilter
from mistral_workflows.core.subjects import (
    DEFAULT_PREFIX,
    LIFECYCLE_STREAM,
    NO_PARENT,
    event_subject,
    stream_subjects,
    subject_matches,
    token,
    validate_prefix,
    validate_stream_type,
)

HOSTILE = ["a.b.c", "tenantB.>", "x * y", "line\nbreak", "$JS.API.x", "é" * 1000, ""]
READABLE = ["order-42", "wf_1", "A", "abc-DEF_123", "x" * 64]

# Arbitrary unicode, plus text biased towards the characters that break subjects.
any_text = st.text() | st.text(alphabet=".*> \n\t\r\x00$~a_-")


def _is_valid_token(value: str) -> bool:
    return (
        0 < len(value) <= 64
        and value.isascii()
        and not any(char in ".*>" or char.isspace() for char in value)
        and not any(unicodedata.category(char).startswith("C") for char in value)
    )


def _workflow_subject(
    exec_id: str = "e", *, root_exec_id: str = "root", workflow_name: str = "wf"
) -> str:
    return event_subject(
        DEFAULT_PREFIX,
        namespace="default",
        stream=LIFECYCLE_STREAM,
        workflow_name=workflow_name,
        root_exec_id=root_exec_id,
        parent_exec_id="parent",
        exec_id=exec_id,
    )


def _activity_subject(
    exec_id: str = "e", *, root_exec_id: str = "root", workflow_name: str = "wf"
) -> str:
    return event_subject(
        DEFAULT_PREFIX,
        namespace="default",
        stream="token-stream",
        workflow_name=workflow_name,
        root_exec_id=root_exec_id,
        parent_exec_id=None,
        exec_id=exec_id,
        activity_name="Processing text with explicit control",
        activity_id="1",
        attempt=3,
    )


# token


@given(any_text)
def test_token_is_a_valid_subject_token(value: str) -> None:
    """Any string encodes to one non-empty ASCII token without separators or wildcards."""
    assert _is_valid_token(token(value))


@pytest.mark.parametrize("value", READABLE)
def test_readable_values_are_unchanged(value: str) -> None:
    """Values of 1-64 characters from [A-Za-z0-9_-] are used as is."""
    assert token(value) == value


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_hashed(value: str) -> None:
    """Dotted, wildcard, whitespace, system, long, non-ASCII and empty values are hashed."""
    encoded = token(value)
    assert "~" in encoded
    assert _is_valid_token(encoded)


def test_trailing_newline_is_hashed() -> None:
    """A readable value followed by a newline is not mistaken for a readable one."""
    assert token("order-42\n") != "order-42"


def test_65_characters_are_hashed() -> None:
    """A value one character over the readable limit is hashed."""
    assert "~" in token("x" * 65)


def test_hashed_token_layout() -> None:
    """A hashed token is the 24-character hint, '~' and the 26-char base32 of blake2b-128."""
    value = "a.b.c " * 10
    digest = hashlib.blake2b(value.encode("utf-8"), digest_size=16).digest()
    expected_hash = base64.b32encode(digest).decode("ascii").rstrip("=").lower()
    assert token(value) == f"{'a_b_c_' * 4}~{expected_hash}"
    assert token("a.b.c").startswith("a_b_c~")
    assert len(expected_hash) == 26


@given(any_text)
def test_hashed_token_is_at_most_51_characters(value: str) -> None:
    """A hashed token never exceeds 24 + 1 + 26 characters."""
    encoded = token(value)
    assume("~" in encoded)
    assert len(encoded) <= 51


def test_lone_surrogate_is_hashed() -> None:
    """A lone surrogate, which strict UTF-8 cannot encode, still gives a valid token."""
    assert _is_valid_token(token("\ud800"))


@given(any_text)
def test_token_never_produces_no_parent(value: str) -> None:
    """The NO_PARENT token is out of reach of every value."""
    assert token(value) != NO_PARENT


@given(any_text, any_text)
def test_distinct_values_give_distinct_tokens(first: str, second: str) -> None:
    """Two different values never share a token."""
    assume(first != second)
    assert token(first) != token(second)


@pytest.mark.parametrize(("first", "second"), [("a.b", "a_b"), ("a b", "a_b"), ("~", "_")])
def test_lookalike_values_give_distinct_tokens(first: str, second: str) -> None:
    """Values whose hints coincide still give different tokens."""
    assert token(first) != token(second)


# event_subject


@given(any_text, any_text, any_text, any_text, any_text)
def test_workflow_subject_has_8_tokens(
    namespace: str, workflow_name: str, root: str, parent: str, exec_id: str
) -> None:
    """A workflow-scoped subject always has exactly 8 tokens, ending in 'workflow'."""
    subject = event_subject(
        DEFAULT_PREFIX,
        namespace=namespace,
        stream="token-stream",
        workflow_name=workflow_name,
        root_exec_id=root,
        parent_exec_id=parent,
        exec_id=exec_id,
    )
    tokens = subject.split(".")
    assert len(tokens) == 8
    assert tokens[-1] == "workflow"


@given(any_text, any_text, any_text, st.integers(min_value=1))
def test_activity_subject_has_11_tokens(
    exec_id: str, activity_name: str, activity_id: str, attempt: int
) -> None:
    """An activity-scoped subject always has exactly 11 tokens."""
    subject = event_subject(
        DEFAULT_PREFIX,
        namespace="default",
        stream="token-stream",
        workflow_name="wf",
        root_exec_id=exec_id,
        parent_exec_id=None,
        exec_id=exec_id,
        activity_name=activity_name,
        activity_id=activity_id,
        attempt=attempt,
    )
    tokens = subject.split(".")
    assert len(tokens) == 11
    assert tokens[7] == "activity"
    assert tokens[10] == str(attempt)


def test_subject_layout() -> None:
    """Fields appear in the documented order, readable ones unchanged."""
    subject = event_subject(
        "acme.workflows",
        namespace="default",
        stream="token-stream",
        workflow_name="chat",
        root_exec_id="root-1",
        parent_exec_id="parent-1",
        exec_id="child-1",
        activity_name="generate",
        activity_id="7",
        attempt=2,
    )
    expected = (
        "acme.workflows.default.token-stream.chat.root-1.parent-1.child-1.activity.generate.7.2"
    )
    assert subject == expected


def test_missing_parent_uses_no_parent_token() -> None:
    """A root workflow has NO_PARENT in the parent position, distinct from a '~' parent id."""
    root = _activity_subject()
    assert root.split(".")[5] == NO_PARENT
    tilde_parent = event_subject(
        DEFAULT_PREFIX,
        namespace="default",
        stream="token-stream",
        workflow_name="wf",
        root_exec_id="root",
        parent_exec_id="~",
        exec_id="e",
    )
    assert tilde_parent.split(".")[5] != NO_PARENT


def test_lifecycle_stream_is_unchanged() -> None:
    """The reserved lifecycle stream name appears as is in the subject."""
    assert _workflow_subject().split(".")[2] == LIFECYCLE_STREAM


def test_subject_of_1000_character_values_stays_small() -> None:
    """With 1,000-character values everywhere the subject stays within 1,024 bytes."""
    long = "é.* >" * 200
    subject = event_subject(
        "p" * 64,
        namespace=long,
        stream=long,
        workflow_name=long,
        root_exec_id=long,
        parent_exec_id=long,
        exec_id=long,
        activity_name=long,
        activity_id=long,
        attempt=2**63,
    )
    assert len(subject.encode("utf-8")) <= 1024


@pytest.mark.parametrize("attempt", [0, -1, None, True, 1.0])
def test_bad_attempt_is_rejected(attempt: object) -> None:
    """An activity subject needs a positive int attempt."""
    with pytest.raises(ConfigurationError, match="attempt"):
        event_subject(
            DEFAULT_PREFIX,
            namespace="default",
            stream="token-stream",
            workflow_name="wf",
            root_exec_id="r",
            parent_exec_id=None,
            exec_id="e",
            activity_name="act",
            activity_id="1",
            attempt=attempt,  # type: ignore[arg-type]
        )


def test_activity_fields_without_activity_name_are_rejected() -> None:
    """activity_id or attempt without activity_name is an error, not a silent workflow scope."""
    with pytest.raises(ConfigurationError, match="activity_name"):
        event_subject(
            DEFAULT_PREFIX,
            namespace="default",
            stream="token-stream",
            workflow_name="wf",
            root_exec_id="r",
            parent_exec_id=None,
            exec_id="e",
            activity_id="1",
            attempt=1,
        )


def test_activity_name_without_activity_id_is_rejected() -> None:
    """activity_name without activity_id is an error."""
    with pytest.raises(ConfigurationError, match="activity_id"):
        event_subject(
            DEFAULT_PREFIX,
            namespace="default",
            stream="token-stream",
            workflow_name="wf",
            root_exec_id="r",
            parent_exec_id=None,
            exec_id="e",
            activity_name="act",
            attempt=1,
        )


# filter_subject and isolation


def test_stream_subjects_captures_the_prefix() -> None:
    """The stream captures every subject under the prefix."""
    assert stream_subjects(DEFAULT_PREFIX) == "workflows.>"
    assert subject_matches(stream_subjects(DEFAULT_PREFIX), _activity_subject())


def test_filter_subject_wildcards_missing_fields() -> None:
    """Each None field becomes '*' and the filter ends in '.>'."""
    assert EventFilter(workflow_exec_id="e").subject(DEFAULT_PREFIX) == "workflows.*.*.*.*.*.e.>"
    assert EventFilter().subject(DEFAULT_PREFIX) == "workflows.*.*.*.*.*.*.>"


@given(any_text, any_text)
def test_exec_id_filter_isolates_executions(first: str, second: str) -> None:
    """A filter on exec id A matches A's events of both scopes and never B's."""
    assume(first != second)
    selected = EventFilter(workflow_exec_id=first).subject(DEFAULT_PREFIX)
    assert subject_matches(selected, _workflow_subject(first))
    assert subject_matches(selected, _activity_subject(first))
    assert not subject_matches(selected, _workflow_subject(second))
    assert not subject_matches(selected, _activity_subject(second))


@given(any_text, any_text)
def test_root_exec_id_filter_isolates_trees(first: str, second: str) -> None:
    """A filter on root exec id A matches A's tree and never B's."""
    assume(first != second)
    selected = EventFilter(root_workflow_exec_id=first).subject(DEFAULT_PREFIX)
    assert subject_matches(selected, _workflow_subject(root_exec_id=first))
    assert subject_matches(selected, _activity_subject(root_exec_id=first))
    assert not subject_matches(selected, _workflow_subject(root_exec_id=second))
    assert not subject_matches(selected, _activity_subject(root_exec_id=second))


@given(any_text, any_text)
def test_workflow_name_filter_isolates_workflow_types(first: str, second: str) -> None:
    """A filter on workflow name A matches A's events and never B's."""
    assume(first != second)
    selected = EventFilter(workflow_name=first).subject(DEFAULT_PREFIX)
    assert subject_matches(selected, _workflow_subject(workflow_name=first))
    assert subject_matches(selected, _activity_subject(workflow_name=first))
    assert not subject_matches(selected, _workflow_subject(workflow_name=second))
    assert not subject_matches(selected, _activity_subject(workflow_name=second))


@given(any_text)
def test_wildcard_filter_matches_every_execution(exec_id: str) -> None:
    """Negative control: the all-wildcard filter does match any execution's events."""
    selected = EventFilter().subject(DEFAULT_PREFIX)
    assert subject_matches(selected, _workflow_subject(exec_id))
    assert subject_matches(selected, _activity_subject(exec_id))


def test_full_filter_matches_its_own_subject() -> None:
    """A filter with every field set matches the event built from the same fields."""
    selected = EventFilter(
        namespace="default",
        stream="token-stream",
        workflow_name="wf",
        root_workflow_exec_id="root",
        parent_workflow_exec_id="a.b",
        workflow_exec_id="x * y",
    ).subject(DEFAULT_PREFIX)
    subject = event_subject(
        DEFAULT_PREFIX,
        namespace="default",
        stream="token-stream",
        workflow_name="wf",
        root_exec_id="root",
        parent_exec_id="a.b",
        exec_id="x * y",
    )
    assert subject_matches(selected, subject)


# subject_matches


def test_subject_matches_literal() -> None:
    """A filter without wildcards matches only the identical subject."""
    assert subject_matches("a.b.c", "a.b.c")
    assert not subject_matches("a.b.c", "a.b.d")


def test_star_matches_exactly_one_token() -> None:
    """'*' matches any single token but not zero or two."""
    assert subject_matches("a.*.c", "a.b.c")
    assert not subject_matches("a.*.c", "a.c")
    assert not subject_matches("a.*.c", "a.b.b.c")


def test_gt_matches_one_or_more_trailing_tokens() -> None:
    """'>' matches one or more trailing tokens but not zero."""
    assert subject_matches("a.>", "a.b")
    assert subject_matches("a.>", "a.b.c.d")
    assert not subject_matches("a.>", "a")
    assert not subject_matches("a.>", "b.c")


def test_length_mismatch_does_not_match() -> None:
    """Without '>', a filter and subject of different lengths never match."""
    assert not subject_matches("a.b", "a.b.c")
    assert not subject_matches("a.b.c", "a.b")


# validate_stream_type


@pytest.mark.parametrize("name", ["token-stream", "progress_stream", "search_results", "x" * 64])
def test_valid_stream_types_are_accepted(name: str) -> None:
    """Names of 1-64 characters from [A-Za-z0-9_-] not starting with '_' are accepted."""
    assert validate_stream_type(name) == name


@pytest.mark.parametrize(
    "name", ["", "x" * 65, "a.b", "a b", LIFECYCLE_STREAM, "_x", "tokén", "a\n", 5, None]
)
def test_invalid_stream_types_are_rejected(name: object) -> None:
    """Bad names raise ConfigurationError naming the value, the rule and an example."""
    with pytest.raises(ConfigurationError) as caught:
        validate_stream_type(name)
    message = str(caught.value)
    assert repr(name)[:40] in message
    assert "1-64 characters" in message
    assert "'_'" in message
    assert '"token-stream"' in message


def test_long_bad_stream_type_is_truncated_in_message() -> None:
    """The error message does not echo a huge value in full."""
    with pytest.raises(ConfigurationError) as caught:
        validate_stream_type("x." * 5000)
    assert len(str(caught.value)) < 500


# validate_prefix


@pytest.mark.parametrize("prefix", [DEFAULT_PREFIX, "acme.workflows", "a-b.c_d.e1", "p" * 64])
def test_valid_prefixes_are_accepted(prefix: str) -> None:
    """Dot-separated [A-Za-z0-9_-]+ tokens of at most 64 characters are accepted."""
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize(
    "prefix", ["", "a..b", "a.>", "a*", ".a", "a.", "a b", "p" * 65, "wörk", None, 1]
)
def test_invalid_prefixes_are_rejected(prefix: object) -> None:
    """Empty tokens, wildcards, other characters, length over 64 and non-str are rejected."""
    with pytest.raises(ConfigurationError, match="dot-separated"):
        validate_prefix(prefix)


def test_scope_filters_split_workflow_and_activity_subjects() -> None:
    """A workflow-scope filter never matches activity subjects, and the reverse."""
    common = {
        "namespace": "default",
        "stream": "s",
        "workflow_name": "W",
        "root_exec_id": "r",
        "parent_exec_id": None,
        "exec_id": "x",
    }
    in_workflow = event_subject(DEFAULT_PREFIX, **common)
    in_activity = event_subject(
        DEFAULT_PREFIX, **common, activity_name="Do it", activity_id="7", attempt=2
    )
    workflow_only = EventFilter(workflow_exec_id="x", scope="workflow").subject(DEFAULT_PREFIX)
    activity_only = EventFilter(workflow_exec_id="x", scope="activity").subject(DEFAULT_PREFIX)
    named = EventFilter(workflow_exec_id="x", activity_name="Do it").subject(DEFAULT_PREFIX)
    other = EventFilter(workflow_exec_id="x", activity_name="Do that").subject(DEFAULT_PREFIX)
    assert subject_matches(workflow_only, in_workflow)
    assert not subject_matches(workflow_only, in_activity)
    assert subject_matches(activity_only, in_activity)
    assert not subject_matches(activity_only, in_workflow)
    assert subject_matches(named, in_activity) and not subject_matches(other, in_activity)
    with pytest.raises(ConfigurationError, match="scope"):
        EventFilter(scope="elsewhere").subject(DEFAULT_PREFIX)
