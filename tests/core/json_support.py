"""Hypothesis strategies and helpers shared by the tests of json_value, pointer, diff, patch."""

from __future__ import annotations

import copy
from enum import IntEnum, StrEnum
from typing import Any

import orjson
from hypothesis import strategies as st

from mistral_workflows.core.diff import diff
from mistral_workflows.core.json_value import JSON
from mistral_workflows.core.patch import apply

TEXT = st.text(st.characters(codec="utf-8"), max_size=6)
# A few keys and values come up often, so that two random documents share keys (diff recurses)
# and values that Python finds == but JSON does not (0, 0.0, -0.0, False...).
KEYS = st.sampled_from(["a", "b", "c", "", "/", "~", "~1", "a/b"]) | TEXT
_TRICKY = st.sampled_from([0, 1, 0.0, -0.0, 1.0, True, False, "", "a"])
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)  # orjson's range
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
    | _TRICKY
)
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=30,
)


def dump(value: object) -> bytes:
    """Strict JSON identity: 1, 1.0, True and -0.0 all serialize differently."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def roundtrip(old: JSON, new: object) -> list[dict[str, Any]]:
    """Diff, apply the ops to a copy of `old`, check it became `new`; return the ops."""
    ops = diff(old, new)
    assert dump(apply(copy.deepcopy(old), ops)) == dump(new)
    return ops


class Color(StrEnum):
    RED = "red"


class Level(IntEnum):
    HIGH = 3


def containers(doc: JSON) -> list[list[JSON] | dict[str, JSON]]:
    """Every list and dict in `doc`, the root included."""
    found: list[list[JSON] | dict[str, JSON]] = []
    pending = [doc]
    while pending:
        node = pending.pop()
        if isinstance(node, list | dict):
            found.append(node)
            pending.extend(node.values() if isinstance(node, dict) else node)
    return found


def random_edit(data: st.DataObject, node: list[JSON] | dict[str, JSON]) -> None:
    """Apply one realistic edit to `node` in place."""
    if isinstance(node, dict):
        strings = [key for key, value in node.items() if isinstance(value, str)]
        edits = ["set", "remove", "grow text"] if strings else ["set", "remove"]
        edit = data.draw(st.sampled_from(edits))
        if edit == "set":
            node[data.draw(KEYS)] = data.draw(JSON_VALUES)
        elif edit == "remove" and node:
            del node[data.draw(st.sampled_from(sorted(node)))]
        elif edit == "grow text":
            key = data.draw(st.sampled_from(strings))
            node[key] = str(node[key]) + data.draw(TEXT)
        return
    edit = data.draw(st.sampled_from(["append", "insert", "pop", "reorder", "set"]))
    if edit == "append":
        node.append(data.draw(JSON_VALUES))
    elif edit == "insert":
        node.insert(data.draw(st.integers(0, len(node))), data.draw(JSON_VALUES))
    elif node and edit == "pop":
        node.pop(data.draw(st.integers(0, len(node) - 1)))
    elif edit == "reorder":
        node[:] = data.draw(st.permutations(node))
    elif node:
        node[data.draw(st.integers(0, len(node) - 1))] = data.draw(JSON_VALUES)
