"""Tests of mistral_workflows.core.patch: apply and merge."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mistral_workflows.core.diff import diff
from mistral_workflows.core.errors import PatchError
from mistral_workflows.core.json_value import JSON, same_json
from mistral_workflows.core.patch import apply, merge
from tests.core.json_support import JSON_VALUES, KEYS, containers, dump, random_edit

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
    assert dump(apply(doc, [op])) == dump(result)


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


# The cases shared with the live page's applier (tests/gateway/test_live_patch.py).
SHARED_CASES = json.loads((Path(__file__).parent / "patch_cases.json").read_text())


@pytest.mark.parametrize("case", SHARED_CASES["ok"], ids=lambda case: case["name"])
def test_shared_case_applies(case: dict[str, Any]) -> None:
    """Each valid case of the shared corpus gives its document, exactly."""
    assert same_json(apply(copy.deepcopy(case["doc"]), case["ops"]), case["result"])


@pytest.mark.parametrize("case", SHARED_CASES["fail"], ids=lambda case: case["name"])
def test_shared_case_fails(case: dict[str, Any]) -> None:
    """Each invalid case of the shared corpus raises PatchError with its message."""
    with pytest.raises(PatchError) as info:
        apply(copy.deepcopy(case["doc"]), case["ops"])
    assert case["message"] in str(info.value)


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


# --- merge: folding the updates of one loop turn -------------------------------------------


def _updates(data: st.DataObject, start: dict[str, JSON]) -> list[list[dict[str, Any]]]:
    """The ops of a few successive realistic updates of `start` (which ends up updated)."""
    batches = []
    for _ in range(data.draw(st.integers(1, 6))):
        new = copy.deepcopy(start)
        for _ in range(data.draw(st.integers(1, 3))):
            random_edit(data, data.draw(st.sampled_from(containers(new))))
        batches.append(diff(start, new))
        start.clear()
        start.update(copy.deepcopy(new))
    return batches


@given(st.dictionaries(KEYS, JSON_VALUES, min_size=1), st.data())
def test_merged_ops_apply_like_the_updates_one_by_one(
    a: dict[str, JSON], data: st.DataObject
) -> None:
    """Folding successive updates' ops gives the same document as applying them in turn,
    and never more ops."""
    final = copy.deepcopy(a)
    batches = _updates(data, final)
    merged: list[dict[str, Any]] = []
    for ops in batches:
        merge(merged, ops)
    assert dump(apply(copy.deepcopy(a), merged)) == dump(final)
    assert len(merged) <= sum(len(ops) for ops in batches)


def test_merge_keeps_a_folded_list_insert_before_the_ops_it_shifts() -> None:
    """An insert into a list, then an op on an item after it, then a new value for the
    inserted item: the insert keeps its place, so the op in between still names its item."""
    doc: JSON = {"c": [{}]}
    batches: list[list[dict[str, Any]]] = [
        [{"op": "add", "path": "/c/0", "value": "a"}],
        [{"op": "add", "path": "/c/1/k", "value": 1}],
        [{"op": "replace", "path": "/c/0", "value": "b"}],
    ]
    one_by_one = copy.deepcopy(doc)
    merged: list[dict[str, Any]] = []
    for ops in batches:
        one_by_one = apply(one_by_one, ops)
        merge(merged, ops)
    assert one_by_one == {"c": ["b", {"k": 1}]}
    assert apply(copy.deepcopy(doc), merged) == one_by_one
    assert len(merged) == 2


def test_merge_folds_a_token_stream_into_one_append() -> None:
    """Tokens added to a list and a text: one add per token, a single append."""
    merged: list[dict[str, Any]] = []
    for i in range(20):
        merge(
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
    merge(merged, ops)
    assert merged == expected
