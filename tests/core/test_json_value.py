"""Tests of mistral_workflows.core.json_value: to_json."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from mistral_workflows.core.errors import InvalidStateError
from mistral_workflows.core.json_value import to_json
from tests.core.json_support import Color, Level, dump


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
