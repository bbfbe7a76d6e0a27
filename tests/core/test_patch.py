"""Tests of mistral_workflows.core.patch: to_json, escape, diff and apply."""

from __future__ import annotations

import copy
import math
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mistral_workflows.core import patch
from mistral_workflows.core.errors import InvalidStateError, PatchError
from mistral_workflows.core.patch import JSON, apply, diff, escape, to_json, unescape

# --- strategies and helpers -----------------------------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8"), max_size=6)
# A few keys and values come up often, so that two random documents share keys (diff recurses)
# and values that Python finds == but JSON does not (0, 0.0, -0.0, False...).
_KEYS = st.sampled_from(["a", "b", "c", "", "/", "~", "~1", "a/b"]) | _TEXT
_TRICKY = st.sampled_from([0, 1, 0.0, -0.0, 1.0, True, False, "", "a"])
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)  # orjson's range
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT
    | _TRICKY
)
_JSON: st.SearchStrategy[Any] = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(_KEYS, children, max_size=5),
    max_leaves=30,
)


def _dump(value: object) -> bytes:
    """Strict JSON identity: 1, 1.0, True and -0.0 all serialize differently."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _roundtrip(old: JSON, new: object) -> list[dict[str, Any]]:
    """Diff, apply the ops to a copy of `old`, check it became `new`; return the ops."""
    ops = diff(old, new)
    assert _dump(apply(copy.deepcopy(old), ops)) == _dump(new)
    return ops


class Color(StrEnum):
    RED = "red"


class Level(IntEnum):
    HIGH = 3


# --- diff: properties -----------------------------------------------------------------------


@given(_JSON, _JSON)
def test_diff_then_apply_gives_new_exactly(a: JSON, b: JSON) -> None:
    """Applying diff(a, b) to a copy of a gives b, with exact JSON types."""
    _roundtrip(a, b)


@given(_JSON, _JSON)
def test_diff_mutates_neither_side(a: JSON, b: JSON) -> None:
    """diff leaves both of its arguments untouched."""
    before_a, before_b = _dump(a), _dump(b)
    diff(a, b)
    assert (_dump(a), _dump(b)) == (before_a, before_b)


@given(_JSON)
def test_diff_of_equal_values_is_empty(a: JSON) -> None:
    """A value diffed with itself, or with an equal copy, gives no ops."""
    assert diff(a, a) == []
    assert diff(a, copy.deepcopy(a)) == []


def _containers(doc: JSON) -> list[list[JSON] | dict[str, JSON]]:
    found: list[list[JSON] | dict[str, JSON]] = []
    pending = [doc]
    while pending:
        node = pending.pop()
        if isinstance(node, list | dict):
            found.append(node)
            pending.extend(node.values() if isinstance(node, dict) else node)
    return found


def _edit(data: st.DataObject, node: list[JSON] | dict[str, JSON]) -> None:
    """Apply one realistic edit to `node` in place."""
    if isinstance(node, dict):
        strings = [key for key, value in node.items() if isinstance(value, str)]
        edits = ["set", "remove", "grow text"] if strings else ["set", "remove"]
        edit = data.draw(st.sampled_from(edits))
        if edit == "set":
            node[data.draw(_KEYS)] = data.draw(_JSON)
        elif edit == "remove" and node:
            del node[data.draw(st.sampled_from(sorted(node)))]
        elif edit == "grow text":
            key = data.draw(st.sampled_from(strings))
            node[key] = str(node[key]) + data.draw(_TEXT)
        return
    edit = data.draw(st.sampled_from(["append", "insert", "pop", "reorder", "set"]))
    if edit == "append":
        node.append(data.draw(_JSON))
    elif edit == "insert":
        node.insert(data.draw(st.integers(0, len(node))), data.draw(_JSON))
    elif node and edit == "pop":
        node.pop(data.draw(st.integers(0, len(node) - 1)))
    elif edit == "reorder":
        node[:] = data.draw(st.permutations(node))
    elif node:
        node[data.draw(st.integers(0, len(node) - 1))] = data.draw(_JSON)


@given(st.dictionaries(_KEYS, _JSON, min_size=1), st.data())
def test_diff_of_realistic_edits(a: dict[str, JSON], data: st.DataObject) -> None:
    """Appends, inserts, removals, reorders and text growth anywhere give a correct patch."""
    b = copy.deepcopy(a)
    for _ in range(data.draw(st.integers(1, 4))):
        _edit(data, data.draw(st.sampled_from(_containers(b))))
    _roundtrip(a, b)


# --- diff: shapes of the ops ----------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_token_stream_gives_one_add_and_one_append(n: int) -> None:
    """A token appended to a list and to a text gives exactly one add and one append."""
    tokens = [f"t{i} " for i in range(n)]
    old: dict[str, Any] = {"tokens": tokens, "text": "".join(tokens)}
    new = {"tokens": [*tokens, "next"], "text": old["text"] + "next"}
    assert _roundtrip(old, new) == [
        {"op": "add", "path": f"/tokens/{n}", "value": "next"},
        {"op": "append", "path": "/text", "value": "next"},
    ]


def test_growing_list_is_not_diffed_element_by_element(monkeypatch: pytest.MonkeyPatch) -> None:
    """The growing-list fast path diffs no element of the old part in Python."""
    calls = []
    value = patch._Differ.value

    def counting(self: patch._Differ, *args: Any) -> None:
        calls.append(args[2])
        value(self, *args)

    monkeypatch.setattr(patch._Differ, "value", counting)
    tokens = [f"t{i}" for i in range(1000)]
    old = to_json({"tokens": tokens, "meta": {"n": 1000}})
    diff(old, {"tokens": [*tokens, "x"], "meta": {"n": 1000}})
    assert calls == ["", "/tokens", "/meta"]


def test_diff_of_a_list_of_dicts_targets_the_changed_element() -> None:
    """Text growing in the last message of a list gives a single append at its path."""
    old: Any = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hel"}]
    new = copy.deepcopy(old)
    new[1]["content"] += "lo"
    assert _roundtrip(old, new) == [{"op": "append", "path": "/1/content", "value": "lo"}]


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
    assert _roundtrip(old, new) == ops


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
    assert _roundtrip(old, new) != []


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
    _roundtrip(old, new)


def test_diff_converts_tuples_and_enums() -> None:
    """Tuples diff as lists; StrEnum and IntEnum values land in ops as exact str and int."""
    ops = _roundtrip({"a": []}, {"a": (Color.RED, Level.HIGH), "b": Color.RED})
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


# --- pointers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "token"), [("a/b", "a~1b"), ("~", "~0"), ("~1", "~01"), ("/~", "~1~0"), ("", "")]
)
def test_escape_and_unescape(key: str, token: str) -> None:
    """Keys escape to RFC 6901 tokens and back."""
    assert (escape(key), unescape(token)) == (token, key)


def test_keys_with_slash_and_tilde_are_escaped_in_ops() -> None:
    """Keys containing / and ~ give escaped paths that apply resolves."""
    ops = _roundtrip({"a/b": {"~": 1}}, {"a/b": {"~": 2}, "~1": 3})
    assert [op["path"] for op in ops] == ["/a~1b/~0", "/~01"]


# --- apply ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "op", "result"),
    [
        ({}, {"op": "add", "path": "/a", "value": 1}, {"a": 1}),
        ([1, 3], {"op": "add", "path": "/1", "value": 2}, [1, 2, 3]),
        ([1], {"op": "add", "path": "/-", "value": 2}, [1, 2]),
        ([1], {"op": "add", "path": "/1", "value": 2}, [1, 2]),
        ({"a": 1}, {"op": "add", "path": "", "value": [1]}, [1]),
        ({"a": 1, "b": 2}, {"op": "remove", "path": "/a"}, {"b": 2}),
        ([1, 2, 3], {"op": "remove", "path": "/1"}, [1, 3]),
        ({"a": 1}, {"op": "replace", "path": "/a", "value": None}, {"a": None}),
        ([1, 2], {"op": "replace", "path": "/0", "value": 0}, [0, 2]),
        ({"a": 1}, {"op": "replace", "path": "", "value": "doc"}, "doc"),
        ({"a": {"b": 1}}, {"op": "move", "from": "/a/b", "path": "/c"}, {"a": {}, "c": 1}),
        ({"a": [1, 2]}, {"op": "move", "from": "/a/0", "path": "/a/-"}, {"a": [2, 1]}),
        ({"a": 1}, {"op": "move", "from": "/a", "path": "/a"}, {"a": 1}),
        ({"a": [1]}, {"op": "copy", "from": "/a", "path": "/b"}, {"a": [1], "b": [1]}),
        ({"a": [1.0]}, {"op": "test", "path": "/a", "value": [1]}, {"a": [1.0]}),
        ({"t": "Hel"}, {"op": "append", "path": "/t", "value": "lo"}, {"t": "Hello"}),
        (["a"], {"op": "append", "path": "/0", "value": "b"}, ["ab"]),
        ("Hel", {"op": "append", "path": "", "value": "lo"}, "Hello"),
        ({"a/b": {"~": 1}}, {"op": "replace", "path": "/a~1b/~0", "value": 2}, {"a/b": {"~": 2}}),
    ],
)
def test_apply_supports_every_op(doc: JSON, op: dict[str, Any], result: JSON) -> None:
    """Each op kind (and each add/remove/replace target) gives the expected document."""
    assert _dump(apply(doc, [op])) == _dump(result)


def test_apply_works_in_place() -> None:
    """apply mutates the document it gets and returns it."""
    doc: JSON = {"tokens": []}
    assert apply(doc, [{"op": "add", "path": "/tokens/-", "value": "a"}]) is doc
    assert doc == {"tokens": ["a"]}


def test_apply_copies_values_by_default() -> None:
    """Container values are copied, so the document and the kept ops never share them."""
    ops: list[dict[str, Any]] = [{"op": "add", "path": "/a", "value": {"b": []}}]
    doc: Any = apply({}, ops)
    doc["a"]["b"].append(1)
    assert ops[0]["value"] == {"b": []}


def test_apply_can_insert_values_without_copying() -> None:
    """With copy_values=False the op's value is inserted as it is."""
    value: list[JSON] = []
    doc: Any = apply({}, [{"op": "add", "path": "/a", "value": value}], copy_values=False)
    assert doc["a"] is value


def test_copy_op_copies_deeply() -> None:
    """A copied value does not share containers with its source."""
    doc: Any = apply({"a": {"b": []}}, [{"op": "copy", "from": "/a", "path": "/c"}])
    doc["a"]["b"].append(1)
    assert doc["c"] == {"b": []}


@pytest.mark.parametrize(
    ("doc", "op", "message"),
    [
        ({}, {"op": "frobnicate", "path": "/a"}, "unknown op 'frobnicate'"),
        ({}, {"path": "/a", "value": 1}, "unknown op None"),
        ({}, {"op": "add", "value": 1}, "missing 'path'"),
        ({}, {"op": "add", "path": 3, "value": 1}, "'path' must be str"),
        ({}, {"op": "add", "path": "/a"}, "missing 'value'"),
        ({}, {"op": "move", "path": "/a"}, "missing 'from'"),
        ({}, {"op": "add", "path": "a", "value": 1}, "is not a JSON pointer"),
        ({}, {"op": "add", "path": "/~2", "value": 1}, "'~' must be followed by 0 or 1"),
        ({}, {"op": "remove", "path": "/a"}, "no member 'a'"),
        ({}, {"op": "replace", "path": "/a", "value": 1}, "no member 'a'"),
        ({}, {"op": "add", "path": "/a/b", "value": 1}, "no member 'a'"),
        ({"a": 1}, {"op": "add", "path": "/a/b", "value": 1}, "cannot look up 'b' in int"),
        ([1], {"op": "add", "path": "/2", "value": 1}, "index 2 is out of range"),
        ([1], {"op": "remove", "path": "/1"}, "index 1 is out of range"),
        ([1], {"op": "replace", "path": "/01", "value": 1}, "'01' is not a list index"),
        ([1], {"op": "remove", "path": "/x"}, "'x' is not a list index"),
        ([1], {"op": "remove", "path": "/-"}, "only works with 'add'"),
        ({}, {"op": "remove", "path": ""}, "cannot remove the root"),
        ({"a": 1}, {"op": "append", "path": "/a", "value": "x"}, "needs a string target"),
        ([], {"op": "append", "path": "", "value": "x"}, "needs a string target"),
        ({"a": ""}, {"op": "append", "path": "/a", "value": 1}, "'value' must be str"),
        ({"a": 1}, {"op": "test", "path": "/a", "value": True}, "test failed"),
        ({"a": {}}, {"op": "move", "from": "/a", "path": "/a/b"}, "its own children"),
        ({}, {"op": "add", "path": "/a", "value": {1, 2}}, "the value is not JSON"),
    ],
)
def test_apply_rejects_invalid_ops(doc: JSON, op: dict[str, Any], message: str) -> None:
    """Each invalid op raises PatchError naming the op index, op name and path."""
    with pytest.raises(PatchError, match=r"op 0 \(") as info:
        apply(doc, [op])
    assert message in str(info.value)
    assert repr(op.get("path")) in str(info.value)


def test_patch_error_names_the_failing_op_index() -> None:
    """The message gives the index of the failing op; earlier ops stay applied."""
    doc: JSON = {}
    ops: list[dict[str, Any]] = [
        {"op": "add", "path": "/a", "value": 1},
        {"op": "remove", "path": "/b"},
    ]
    with pytest.raises(PatchError, match=r"cannot apply op 1 \('remove' at '/b'\): no member"):
        apply(doc, ops)
    assert doc == {"a": 1}


def test_patch_error_is_a_value_error() -> None:
    """PatchError can be caught as ValueError."""
    assert issubclass(PatchError, ValueError)


# --- to_json --------------------------------------------------------------------------------


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
    assert _dump(result) == _dump({"a": ["red", 3, True], "red": 1.5})
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


# --- merge: folding the updates of one loop turn -------------------------------------------


def _updates(data: st.DataObject, start: dict[str, JSON]) -> list[list[dict[str, Any]]]:
    """The ops of a few successive realistic updates of `start` (which ends up updated)."""
    batches = []
    for _ in range(data.draw(st.integers(1, 6))):
        new = copy.deepcopy(start)
        for _ in range(data.draw(st.integers(1, 3))):
            _edit(data, data.draw(st.sampled_from(_containers(new))))
        batches.append(diff(start, new))
        start.clear()
        start.update(copy.deepcopy(new))
    return batches


@given(st.dictionaries(_KEYS, _JSON, min_size=1), st.data())
def test_merged_ops_apply_like_the_updates_one_by_one(
    a: dict[str, JSON], data: st.DataObject
) -> None:
    """Folding successive updates' ops gives the same document as applying them in turn,
    and never more ops."""
    final = copy.deepcopy(a)
    batches = _updates(data, final)
    merged: list[dict[str, Any]] = []
    for ops in batches:
        patch.merge(merged, ops)
    assert _dump(apply(copy.deepcopy(a), merged)) == _dump(final)
    assert len(merged) <= sum(len(ops) for ops in batches)


def test_merge_folds_a_token_stream_into_one_append() -> None:
    """Tokens added to a list and a text: one add per token, a single append."""
    merged: list[dict[str, Any]] = []
    for i in range(20):
        patch.merge(
            merged,
            [
                {"op": "add", "path": f"/tokens/{i}", "value": f"t{i}"},
                {"op": "append", "path": "/text", "value": f"t{i}"},
            ],
        )
    assert [op["op"] for op in merged] == ["add"] * 20 + ["append"]
    assert merged[-1]["value"] == "".join(f"t{i}" for i in range(20))


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        # A value replaced many times is sent once.
        (
            [{"op": "replace", "path": "/n", "value": i} for i in range(5)],
            [{"op": "replace", "path": "/n", "value": 4}],
        ),
        # A new key then an append to it: one add with the whole text.
        (
            [
                {"op": "add", "path": "/t", "value": "a"},
                {"op": "append", "path": "/t", "value": "b"},
            ],
            [{"op": "add", "path": "/t", "value": "ab"}],
        ),
        # Negative control: a removal shifts /l/1 between the two appends, so they target
        # different items and must not fold.
        (
            [
                {"op": "append", "path": "/l/1", "value": "x"},
                {"op": "remove", "path": "/l/0"},
                {"op": "append", "path": "/l/1", "value": "y"},
            ],
            [
                {"op": "append", "path": "/l/1", "value": "x"},
                {"op": "remove", "path": "/l/0"},
                {"op": "append", "path": "/l/1", "value": "y"},
            ],
        ),
        # An append cannot fold into a replace by a non-string.
        (
            [
                {"op": "replace", "path": "/t", "value": 1},
                {"op": "replace", "path": "/t", "value": "a"},
                {"op": "append", "path": "/t", "value": "b"},
            ],
            [{"op": "replace", "path": "/t", "value": "ab"}],
        ),
    ],
)
def test_merge_folds_only_what_is_safe(
    ops: list[dict[str, Any]], expected: list[dict[str, Any]]
) -> None:
    merged: list[dict[str, Any]] = []
    patch.merge(merged, ops)
    assert merged == expected


# --- the growing-list fast path and what it knows about lists of strings ---------------------


def test_growing_list_keeps_exact_json_equality() -> None:
    """1 == 1.0 == True in Python: a list that grows while an item changes type still gets
    the change, with or without a StrLists."""
    known = patch.StrLists()
    for old, new in [([1, 2], [True, 2, 3]), ([0.0], [-0.0, 1]), (["a", 1], ["a", 1.0, 2])]:
        for str_lists in (None, known):
            ops = diff(old, new, str_lists=str_lists)
            assert _dump(apply(copy.deepcopy(old), ops)) == _dump(new)
            assert any(op["op"] == "replace" for op in ops)


def test_str_lists_checks_only_new_items_and_forgets_changed_ones() -> None:
    """StrLists remembers how far a list was checked; an op changing a checked item makes
    it check again, so a non-string put there is never taken for a string."""
    known = patch.StrLists()
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
    known = patch.StrLists()
    shadow: dict[str, JSON] = {"l": ["a", "b"]}
    assert diff(shadow, {"l": ["a", "b", "c"]}, str_lists=known)  # records /l as strings
    ops = [{"op": "replace", "path": "/l/0", "value": 1}]
    if forget:
        known.forget(ops)
    apply(shadow, ops, copy_values=False)
    new = {"l": [True, "b", "c"]}
    result = apply(copy.deepcopy(shadow), diff(shadow, new, str_lists=known))
    assert (_dump(result) == _dump(new)) is forget


def test_growing_token_list_with_str_lists_rebuilds_exactly() -> None:
    """A long token stream diffed against one shadow with a StrLists, as a Task does."""
    known = patch.StrLists()
    shadow: JSON = {"tokens": [], "text": ""}
    live: dict[str, Any] = {"tokens": [], "text": ""}
    for i in range(300):
        token = f" t{i}" if i % 7 else str(i)
        live = {"tokens": [*live["tokens"], token], "text": live["text"] + token}
        ops = diff(shadow, live, str_lists=known)
        known.forget(ops)
        shadow = apply(shadow, ops, copy_values=False)
    assert _dump(shadow) == _dump(live)
