"""Tests of mistral_workflows.core.json_value: to_json, and the checks diffs share with it."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import IntEnum
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mistral_workflows.core.diff import StrLists, diff, diff_keys
from mistral_workflows.core.errors import InvalidStateError
from mistral_workflows.core.json_value import to_json
from tests.core.json_support import JSON_VALUES, Color, Level, dump


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def _cycle() -> dict[str, Any]:
    value: dict[str, Any] = {"a": []}
    value["a"].append(value)
    return value


@pytest.mark.parametrize(
    ("value", "path", "message"),
    [
        ({"a": [1, {2}]}, "'/a/1'", "has type set"),
        ({"a": frozenset()}, "'/a'", "has type frozenset"),
        ({"a": b"x"}, "'/a'", "decode it to str"),
        ({"when": datetime.now(UTC)}, "'/when'", "convert it to an ISO string"),
        ({"day": date(2024, 1, 1)}, "'/day'", "use a pydantic model as state"),
        ({"price": Decimal("1.5")}, "'/price'", "has type decimal.Decimal"),
        ([object()], "'/0'", "has type object"),
        ({"x": math.nan}, "'/x'", "nan, which is not valid JSON"),
        ({"x": [math.inf]}, "'/x/0'", "inf, which is not valid JSON"),
        ({"x": -math.inf}, "'/x'", "-inf, which is not valid JSON"),
        ({"a": {1: "one"}}, "'/a'", "non-str key 1 (int)"),
        (_cycle(), "'/a/0/a/0", "or contains a reference cycle"),
        (_nested(200), "'/0/0/0", "nested deeper than 64 levels"),
        ({"a/b": {"~": {3}}}, "'/a~1b/~0'", "has type set"),
        ({3}, "'' (the root)", "has type set"),
    ],
)
def test_to_json_rejects_non_json(value: object, path: str, message: str) -> None:
    """Each kind of non-JSON value raises InvalidStateError naming its path and the fix."""
    with pytest.raises(InvalidStateError) as info:
        to_json(value)
    assert f"task state at {path}" in str(info.value)
    assert message in str(info.value)


def test_to_json_prefixes_the_given_path() -> None:
    """The path argument is the pointer the value sits at."""
    with pytest.raises(InvalidStateError, match=r"'/state/a' has type set"):
        to_json({"a": set()}, path="/state")


def test_to_json_honours_max_depth() -> None:
    """max_depth is the number of containers allowed inside one another."""
    assert to_json(_nested(3), max_depth=3) == [[[]]]
    with pytest.raises(InvalidStateError, match="deeper than 2 levels"):
        to_json(_nested(3), max_depth=2)


def test_to_json_handles_nesting_past_the_recursion_limit() -> None:
    """Very deep input fails with InvalidStateError, never RecursionError."""
    with pytest.raises(InvalidStateError):
        to_json(_nested(100_000))


def test_to_json_converts_tuples_and_enums() -> None:
    """Tuples become lists; StrEnum and IntEnum become exact str and int; bool stays bool."""
    result: Any = to_json({"a": (Color.RED, Level.HIGH, True), Color.RED: 1.5})
    assert dump(result) == dump({"a": ["red", 3, True], "red": 1.5})
    assert [type(item) for item in result["a"]] == [str, int, bool]
    assert [type(key) for key in result] == [str, str]


def test_to_json_copies_containers_and_shares_leaves() -> None:
    """The copy shares no container with its source, only immutable leaves."""
    text = "a" * 100
    source: dict[str, Any] = {"a": [text, {"b": []}]}
    result: Any = to_json(source)
    assert result == source
    assert result["a"] is not source["a"]
    assert result["a"][1]["b"] is not source["a"][1]["b"]
    assert result["a"][0] is text


# --- what orjson (and so the wire) refuses: big ints, lone surrogates -------------------------


class BigLevel(IntEnum):
    HUGE = 2**70


@pytest.mark.parametrize(
    ("value", "path", "message"),
    [
        (
            {"a": [2**64]},
            "'/a/0'",
            "has an integer outside the 64-bit range (18446744073709551616)",
        ),
        ({"a": -(2**63) - 1}, "'/a'", "has an integer outside the 64-bit range"),
        ([BigLevel.HUGE], "'/0'", "has an integer outside the 64-bit range"),
        ({"a": {"b": "x\ud800"}}, "'/a/b'", "has a str holding the lone surrogate '\\ud800'"),
        ({"a": ["é", "é\udfff"]}, "'/a/1'", "has a str holding the lone surrogate '\\udfff'"),
        ({"a": {"k\udc00": 1}}, "'/a'", "has the key 'k\\udc00' holding the lone surrogate"),
        ({"\ud800": 1}, "'' (the root)", "has the key '\\ud800' holding the lone surrogate"),
        ("\ud800", "'' (the root)", "has a str holding the lone surrogate"),
        (2**64, "'' (the root)", "has an integer outside the 64-bit range"),
    ],
)
def test_to_json_rejects_what_utf8_and_64_bits_cannot_hold(
    value: object, path: str, message: str
) -> None:
    """Ints orjson refuses and lone surrogates raise InvalidStateError naming their path."""
    with pytest.raises(InvalidStateError) as info:
        to_json(value)
    assert f"task state at {path} {message}" in str(info.value)
    assert "surrogate" in str(info.value) or "str(value)" in str(info.value)  # what to do


def test_to_json_accepts_the_limits() -> None:
    """The extreme 64-bit ints, non-ASCII text and surrogate pairs' characters are JSON."""
    value = {"n": [2**64 - 1, -(2**63)], "é😀": "naïve 😀 \U0010ffff"}
    assert dump(to_json(value)) == dump(value)


_WILD_CHARS = st.characters(exclude_categories=()) | st.sampled_from(["\ud800", "\udfff", "é"])
_WILD_TEXT = st.text(_WILD_CHARS, max_size=4)
_WILD_INTS = st.integers() | st.sampled_from([2**64 - 1, 2**64, -(2**63), -(2**63) - 1])
WILD_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | _WILD_INTS
    | st.floats(allow_nan=False, allow_infinity=False)
    | _WILD_TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_WILD_TEXT, children, max_size=4)
    ),
    max_leaves=20,
)


def _sendable(value: object) -> bool:
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True


@given(WILD_VALUES)
def test_to_json_refuses_exactly_what_cannot_be_sent(value: object) -> None:
    """to_json accepts every value orjson can encode and refuses the others with
    InvalidStateError, never a bare TypeError."""
    try:
        copy = to_json(value)
    except InvalidStateError:
        assert not _sendable(value)
    else:
        assert _sendable(copy)


@given(JSON_VALUES, WILD_VALUES, _WILD_TEXT)
def test_diffs_hold_only_what_can_be_sent(old: Any, new: Any, key: str) -> None:
    """diff and the top-level fast paths (appends, int replaces, new keys) refuse what
    cannot be sent with InvalidStateError: every op they return can be encoded."""
    shadow = {"k": old, "t": "text", "n": 1}
    updates = [
        {"k": new},
        {key: new},
        {"t": f"text{new}" if isinstance(new, str) else new},
        {"n": new},
    ]
    for update in updates:
        try:
            ops = diff_keys(shadow, update, StrLists())
        except InvalidStateError:
            assert not _sendable(update)
        else:
            assert _sendable(ops)
    try:
        ops = diff(old, new)
    except InvalidStateError:
        assert not _sendable(new)
    else:
        assert _sendable(ops)
