"""Tests of mistral_workflows.core.diff: diff and StrLists."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mistral_workflows.core.diff import StrLists, _Differ, diff
from mistral_workflows.core.errors import InvalidStateError
from mistral_workflows.core.json_value import JSON, to_json
from mistral_workflows.core.patch import apply
from tests.core.json_support import (
    JSON_VALUES,
    KEYS,
    Color,
    Level,
    containers,
    dump,
    random_edit,
    roundtrip,
)

# --- diff: properties -----------------------------------------------------------------------


@given(JSON_VALUES, JSON_VALUES)
def test_diff_then_apply_gives_new_exactly(a: JSON, b: JSON) -> None:
    """Applying diff(a, b) to a copy of a gives b, with exact JSON types."""
    roundtrip(a, b)


@given(JSON_VALUES, JSON_VALUES)
def test_diff_mutates_neither_side(a: JSON, b: JSON) -> None:
    """diff leaves both of its arguments untouched."""
    before_a, before_b = dump(a), dump(b)
    diff(a, b)
    assert (dump(a), dump(b)) == (before_a, before_b)


@given(JSON_VALUES)
def test_diff_of_equal_values_is_empty(a: JSON) -> None:
    """A value diffed with itself, or with an equal copy, gives no ops."""
    assert diff(a, a) == []
    assert diff(a, copy.deepcopy(a)) == []


@given(st.dictionaries(KEYS, JSON_VALUES, min_size=1), st.data())
def test_diff_of_realistic_edits(a: dict[str, JSON], data: st.DataObject) -> None:
    """Appends, inserts, removals, reorders and text growth anywhere give a correct patch."""
    b = copy.deepcopy(a)
    for _ in range(data.draw(st.integers(1, 4))):
        random_edit(data, data.draw(st.sampled_from(containers(b))))
    roundtrip(a, b)


# --- diff: shapes of the ops ----------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_token_stream_gives_one_add_and_one_append(n: int) -> None:
    """A token appended to a list and to a text gives exactly one add and one append."""
    tokens = [f"t{i} " for i in range(n)]
    old: dict[str, Any] = {"tokens": tokens, "text": "".join(tokens)}
    new = {"tokens": [*tokens, "next"], "text": old["text"] + "next"}
    assert roundtrip(old, new) == [
        {"op": "add", "path": f"/tokens/{n}", "value": "next"},
        {"op": "append", "path": "/text", "value": "next"},
    ]


def test_growing_list_is_not_diffed_element_by_element(monkeypatch: pytest.MonkeyPatch) -> None:
    """The growing-list fast path diffs no element of the old part in Python."""
    calls = []
    value = _Differ.value

    def counting(self: _Differ, *args: Any) -> None:
        calls.append(args[2])
        value(self, *args)

    monkeypatch.setattr(_Differ, "value", counting)
    tokens = [f"t{i}" for i in range(1000)]
    old = to_json({"tokens": tokens, "meta": {"n": 1000}})
    diff(old, {"tokens": [*tokens, "x"], "meta": {"n": 1000}})
    assert calls == ["", "/tokens", "/meta"]


def test_diff_of_a_list_of_dicts_targets_the_changed_element() -> None:
    """Text growing in the last message of a list gives a single append at its path."""
    old: Any = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hel"}]
    new = copy.deepcopy(old)
    new[1]["content"] += "lo"
    assert roundtrip(old, new) == [{"op": "append", "path": "/1/content", "value": "lo"}]


@pytest.mark.parametrize(
    ("old", "new", "ops"),
    [
        ([1, 2, 3], [0, 1, 2, 3], [{"op": "add", "path": "/0", "value": 0}]),
        ([1, 2, 3], [1, 9, 2, 3], [{"op": "add", "path": "/1", "value": 9}]),
        ([1, 2, 3], [1, 3], [{"op": "remove", "path": "/1"}]),
        ([1, 2, 3, 4], [1], [{"op": "remove", "path": f"/{i}"} for i in (3, 2, 1)]),
        ([1, 2, 3], [1, 5, 3], [{"op": "replace", "path": "/1", "value": 5}]),
    ],
)
def test_list_edits_give_minimal_ops(old: JSON, new: JSON, ops: list[dict[str, Any]]) -> None:
    """An insert, a removal or a change in a list gives ops only for that element."""
    assert roundtrip(old, new) == ops


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ([1], [True]),
        ([1], [1.0]),
        ([True, "a"], [1, "a", "b"]),
        ([0.0], [-0.0]),
        ([[0]], [[False]]),
        ([{"a": 1}], [{"a": 1.0}, 2]),
        ({"n": 1}, {"n": True}),
        ([2**70], [float(2**70)]),
    ],
)
def test_diff_tells_equal_python_numbers_apart(old: JSON, new: JSON) -> None:
    """Values Python finds == (1, 1.0, True, -0.0) are changes, even in a list's prefix."""
    assert roundtrip(old, new) != []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ([1, 2, 3], [3, 2, 1]),
        ([1, "a", [2]], [{"x": 1}, None, "a"]),
        ({"a": [1, 2]}, {"a": "now a string"}),
        ({"a": 1}, ["root", "changes", "type"]),
        ("text", "other"),
    ],
)
def test_diff_of_reorders_and_type_changes(old: JSON, new: JSON) -> None:
    """Reorders and type changes, the root included, give a correct patch."""
    roundtrip(old, new)


def test_diff_converts_tuples_and_enums() -> None:
    """Tuples diff as lists; StrEnum and IntEnum values land in ops as exact str and int."""
    ops = roundtrip({"a": []}, {"a": (Color.RED, Level.HIGH), "b": Color.RED})
    assert [type(op["value"]) for op in ops] == [str, int, str]
    assert diff(["red", 3], (Color.RED, Level.HIGH)) == []


def test_ops_do_not_share_the_users_containers() -> None:
    """Mutating the new value after diff leaves the ops unchanged."""
    new: dict[str, Any] = {"a": [1, {"b": [2]}], "c": {"d": []}}
    ops = diff({"c": {}}, new)
    snapshot = copy.deepcopy(ops)
    new["a"][1]["b"].append(3)
    new["a"].append(4)
    new["c"]["d"].append(5)
    assert ops == snapshot


def test_diff_rejects_invalid_new_values_with_their_path() -> None:
    """A non-JSON value in the new state raises InvalidStateError naming its path."""
    with pytest.raises(InvalidStateError, match=r"'/a/1/b' has type set"):
        diff({"a": [0, {}]}, {"a": [0, {"b": {1}}]})


def test_diff_rejects_new_values_nested_too_deep() -> None:
    """A new value nested past max_depth raises InvalidStateError."""
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(InvalidStateError, match="reference cycle"):
        diff([[]], cycle)


# --- the growing-list fast path and what it knows about lists of strings ---------------------


def test_growing_list_keeps_exact_json_equality() -> None:
    """1 == 1.0 == True in Python: a list that grows while an item changes type still gets
    the change, with or without a StrLists."""
    known = StrLists()
    for old, new in [([1, 2], [True, 2, 3]), ([0.0], [-0.0, 1]), (["a", 1], ["a", 1.0, 2])]:
        for str_lists in (None, known):
            ops = diff(old, new, str_lists=str_lists)
            assert dump(apply(copy.deepcopy(old), ops)) == dump(new)
            assert any(op["op"] == "replace" for op in ops)


def test_str_lists_checks_only_new_items_and_forgets_changed_ones() -> None:
    """StrLists remembers how far a list was checked; an op changing a checked item makes
    it check again, so a non-string put there is never taken for a string."""
    known = StrLists()
    shadow: dict[str, JSON] = {"l": ["a", "b"]}
    items = shadow["l"]
    assert isinstance(items, list)
    assert known.all_str("/l", items)
    ops = [{"op": "add", "path": "/l/2", "value": "c"}]
    known.forget(ops)
    apply(shadow, ops, copy_values=False)
    assert known.all_str("/l", items)  # adding past the checked items keeps them
    ops = [{"op": "replace", "path": "/l/0", "value": 1}]
    known.forget(ops)
    apply(shadow, ops, copy_values=False)
    assert not known.all_str("/l", items)


@pytest.mark.parametrize("forget", [True, False])
def test_a_stale_str_lists_would_hide_a_type_change(forget: bool) -> None:
    """With `forget`, 1 -> True in a grown list is seen; negative control: without it, the
    stale record of an all-string list makes diff miss the change, as the test would show."""
    known = StrLists()
    shadow: dict[str, JSON] = {"l": ["a", "b"]}
    assert diff(shadow, {"l": ["a", "b", "c"]}, str_lists=known)  # records /l as strings
    ops = [{"op": "replace", "path": "/l/0", "value": 1}]
    if forget:
        known.forget(ops)
    apply(shadow, ops, copy_values=False)
    new = {"l": [True, "b", "c"]}
    result = apply(copy.deepcopy(shadow), diff(shadow, new, str_lists=known))
    assert (dump(result) == dump(new)) is forget


def test_growing_token_list_with_str_lists_rebuilds_exactly() -> None:
    """A long token stream diffed against one shadow with a StrLists, as a Task does."""
    known = StrLists()
    shadow: JSON = {"tokens": [], "text": ""}
    live: dict[str, Any] = {"tokens": [], "text": ""}
    for i in range(300):
        token = f" t{i}" if i % 7 else str(i)
        live = {"tokens": [*live["tokens"], token], "text": live["text"] + token}
        ops = diff(shadow, live, str_lists=known)
        known.forget(ops)
        shadow = apply(shadow, ops, copy_values=False)
    assert dump(shadow) == dump(live)
