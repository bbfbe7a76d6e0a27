"""`diff`: the JSON-patch ops turning a task's last published state into its new one
(`diff_keys`: for the top-level keys an update names).

The producer keeps a *shadow*: a private, pure-JSON copy of the last state it published. Each
update is published as the ops turning the shadow into the user's new values (see
`mistral_workflows.core.patch` for the ops).

`diff` runs on every token of an LLM stream, so in the streaming shapes (a list or a string
growing at its end, a few keys changing) its Python work is O(change). What stays proportional
to the state is a few C-level passes over a list's pointers (a few ns per element).

Every value in the ops is checked as `to_json` checks it (JSON types, finite floats, ints in
the 64-bit range, no lone surrogate), with nesting counted from the root: what `diff` accepts
can be sent.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from itertools import compress, count, repeat
from operator import is_, is_not, ne
from typing import Any, cast

import orjson

from mistral_workflows.core.json_value import (
    JSON,
    MAX_DEPTH,
    check_int,
    check_str,
    json_key,
    json_kind,
    same_json,
    same_scalar,
    to_json_at,
)
from mistral_workflows.core.patch import Op
from mistral_workflows.core.pointer import escape

__all__ = ["StrLists", "diff", "diff_keys"]

_MISSING = object()


def diff(
    old: JSON,
    new: object,
    path: str = "",
    *,
    depth: int = 0,
    max_depth: int = MAX_DEPTH,
    str_lists: StrLists | None = None,
) -> list[Op]:
    """Return the ops turning `old` into `new`.

    A string that grows at its end gives one `append`; a list that grows at its end gives one
    `add` per new element (explicit indices), whatever the list's length. Other list edits
    (insert, remove, reorder) diff the part between the common prefix and suffix pairwise,
    then add or remove the extra elements, so they never fail, they only give more ops.
    Comparisons are exact JSON ones, the list fast path included: 1 -> True or 0.0 -> -0.0
    anywhere is a change (see `_common_prefix`).

    Args:
        old: Trusted pure JSON (the shadow); it is not mutated.
        new: The user's new value; checked as `to_json` does wherever it differs from `old`.
        path: The pointer of `old` in the document ("" for the root).
        depth: How many containers hold `old` (0 for the root, 1 for a top-level key's
            value), so that nesting is counted from the root wherever the diff starts.
        max_depth: The most containers allowed inside one another, counted from the root.
        str_lists: What is known about `old`'s lists of strings, kept across calls by a
            producer that diffs against the same shadow again and again; it saves a pass
            over each long list of tokens (see `StrLists`).

    Returns:
        The ops, `[]` if nothing changed. Their values are independent copies.

    Raises:
        InvalidStateError: A changed part of `new` is not JSON; the message names its path.
    """
    differ = _Differ(max_depth, str_lists)
    differ.value(old, new, path, depth)
    return differ.ops


def diff_keys(shadow: JSON, changes: Mapping[str, Any], str_lists: StrLists) -> list[Op]:
    """The ops for the changed top-level keys; strings and exact ints, bools and None (the
    usual updates: text, counters, flags) are compared here, the rest by `diff`.

    Nesting is counted from the root, as at the end of the task: a key's value is in one
    container already.
    """
    assert isinstance(shadow, dict)
    ops: list[Op] = []
    for key, value in changes.items():
        old: Any = shadow.get(key, _MISSING) if type(key) is str else _MISSING
        if old is value:
            continue
        if old is _MISSING:
            path = _path(key if type(key) is str and key.isascii() else json_key(key, ""))
            ops.append({"op": "add", "path": path, "value": to_json_at(value, path, 1, MAX_DEPTH)})
            continue
        path = _path(key)
        kind = type(value)
        if kind is not type(old) or kind not in _PLAIN:
            ops += diff(old, value, path, depth=1, str_lists=str_lists)
        elif old == value:
            continue
        elif kind is str and len(value) > len(old) and value.startswith(old):
            added = value[len(old) :]
            if not added.isascii():
                check_str(added, path)
            ops.append({"op": "append", "path": path, "value": added})
        else:
            if kind is int:
                check_int(value, path)
            elif kind is str and not value.isascii():
                check_str(value, path)
            ops.append({"op": "replace", "path": path, "value": value})
    return ops


# Exact types whose equality is JSON equality (not float: 0.0 == -0.0).
_PLAIN = frozenset({str, int, bool, type(None)})


@functools.lru_cache(maxsize=1024)
def _path(key: str) -> str:
    return "/" + escape(key)


class StrLists:
    """Which lists of a shadow hold only strings, and up to which index that was checked.

    A list of tokens only grows, so each check covers only the new items, instead of a pass
    over the whole list at every update. The shadow's owner must call `forget` with the ops
    it applies to the shadow (they may change checked items).
    """

    __slots__ = ("_known",)

    def __init__(self) -> None:
        self._known: dict[str, tuple[list[JSON], int]] = {}

    def all_str(self, path: str, items: list[JSON]) -> bool:
        """Whether every item of `items` (the shadow's list at `path`) is a str."""
        known = self._known.get(path)
        checked = known[1] if known is not None and known[0] is items else 0
        if checked > len(items):
            checked = 0
        if not _all_str(items[checked:] if checked else items):
            self._known.pop(path, None)
            return False
        self._known[path] = (items, len(items))
        return True

    def forget(self, ops: Iterable[Op]) -> None:
        """Drop what `ops` (about to be applied to the shadow) may make untrue."""
        known = self._known
        if not known:
            return
        for op in ops:
            changed = op["path"]
            for path in [p for p in known if changed.startswith(p + "/") or p == changed]:
                if path == changed or path.startswith(changed + "/"):
                    del known[path]
                    continue
                token = changed[len(path) + 1 :].partition("/")[0]
                # Adding past the checked items (a token) keeps the checked ones as they are.
                if token != "-" and not (
                    op["op"] == "add" and token.isdigit() and int(token) >= known[path][1]
                ):
                    del known[path]


class _Differ:
    """Collects the ops of one `diff` call."""

    __slots__ = ("max_depth", "ops", "str_lists")

    def __init__(self, max_depth: int, str_lists: StrLists | None) -> None:
        self.max_depth = max_depth
        self.str_lists = str_lists
        self.ops: list[Op] = []

    def value(self, old: JSON, new: Any, path: str, depth: int) -> None:
        """Diff one value with `depth` containers above it."""
        if old is new:  # a leaf the shadow shares with the user's data
            return
        if json_kind(new) is not type(old):  # includes anything that is not JSON
            self.replace(new, path, depth)
        elif isinstance(old, str):
            self.diff_str(old, new, path)
        elif isinstance(old, dict | list):
            if depth >= self.max_depth:  # also bounds this recursion on cyclic `new`
                to_json_at(new, path, depth, self.max_depth)  # raises the usual error
            if isinstance(old, dict):
                self.diff_dict(old, new, path, depth + 1)
            else:
                self.diff_list(old, new if isinstance(new, list) else list(new), path, depth + 1)
        elif not same_scalar(old, new):
            self.replace(new, path, depth)

    def replace(self, new: Any, path: str, depth: int) -> None:
        self.ops.append(
            {"op": "replace", "path": path, "value": to_json_at(new, path, depth, self.max_depth)}
        )

    def add(self, new: Any, path: str, depth: int) -> None:
        self.ops.append(
            {"op": "add", "path": path, "value": to_json_at(new, path, depth, self.max_depth)}
        )

    def diff_str(self, old: str, new: str, path: str) -> None:
        if old == new:
            return
        if len(new) > len(old) and new.startswith(old):
            # Slicing gives an exact str even for a str subclass.
            added = check_str(new[len(old) :], path)
            self.ops.append({"op": "append", "path": path, "value": added})
        else:
            self.ops.append(
                {"op": "replace", "path": path, "value": check_str(str.__str__(new), path)}
            )

    def diff_dict(self, old: dict[str, JSON], new: Any, path: str, depth: int) -> None:
        """Diff two dicts whose items have `depth` containers above them."""
        gone = old.keys() - new.keys()
        if gone:  # in old's order, so that ops are deterministic
            self.ops.extend(
                {"op": "remove", "path": f"{path}/{escape(k)}"} for k in old if k in gone
            )
        # Keys whose value is the very object in `old` (shared leaves) are unchanged; they are
        # skipped in C, so only changed keys and nested containers cost Python work.
        changed = compress(new, map(is_not, new.values(), map(old.get, new, repeat(_MISSING))))
        for key in changed:
            name = key if type(key) is str and key.isascii() else json_key(key, path)
            child = f"{path}/{escape(name)}"
            if name in old:
                self.value(old[name], new[key], child, depth)
            else:
                self.add(new[key], child, depth)

    def diff_list(self, old: list[JSON], new: list[Any], path: str, depth: int) -> None:
        """Diff two lists whose elements have `depth` containers above them."""
        if len(new) > len(old) and self.extends(old, new, path):
            for index in range(len(old), len(new)):
                self.add(new[index], f"{path}/{index}", depth)
            return
        start = _common_prefix(old, new)
        stop_old, stop_new = len(old), len(new)
        if start < stop_old and start < stop_new:
            end = _common_prefix(old[start:][::-1], new[start:][::-1])
            stop_old, stop_new = stop_old - end, stop_new - end
        shared = min(stop_old, stop_new)
        for index in range(start, shared):
            self.value(old[index], new[index], f"{path}/{index}", depth)
        for index in range(shared, stop_new):
            self.add(new[index], f"{path}/{index}", depth)
        # Highest index first, so that each index is still the one it was in `old`.
        self.ops.extend(
            {"op": "remove", "path": f"{path}/{index}"}
            for index in range(stop_old - 1, shared - 1, -1)
        )

    def extends(self, old: list[JSON], new: list[Any], path: str) -> bool:
        """Whether the longer `new` starts with exactly `old`: the streaming case.

        `old` gets `new`'s extra items for a moment, so that one `==` pass in C compares the
        two lists without copying the shared part (`old` is ours; it is restored at once).
        """
        size = len(old)
        old.extend(new[size:])
        try:
            equal = old == new
        except Exception:  # a user __eq__ or __bool__ raised: let the general path judge
            equal = False
        finally:
            del old[size:]
        if not equal:
            return False
        if self.str_lists is not None and self.str_lists.all_str(path, old):
            return True  # `==` to a str is the same JSON value
        return _exactly_equal(old, new[:size])


def _common_prefix(old: list[JSON], new: list[Any]) -> int:
    """Length of the longest common prefix of two lists, with exact JSON equality.

    Python's `==` does the bulk of the work in C, but it says 1 == 1.0 == True and
    0.0 == -0.0, so an `==` prefix can hide a changed JSON value. `_exactly_equal` closes
    that hole in C too; only when it fails (a 1 -> True swap...) is the culprit found in Python.
    """
    limit = min(len(old), len(new))
    old_head = old if limit == len(old) else old[:limit]
    new_head = new if limit == len(new) else new[:limit]
    end = _loose_prefix(old_head, new_head)
    if end < limit:
        old_head, new_head = old_head[:end], new_head[:end]
    if _exactly_equal(old_head, new_head):
        return end
    return next((i for i in range(end) if not same_json(old[i], new[i])), end)


def _loose_prefix(old: list[JSON], new: list[Any]) -> int:
    """Length of the common `==` prefix of two lists of the same length, found in C."""
    try:
        if old == new:
            return len(old)
        return next(compress(count(), map(ne, old, new)), 0)
    except (
        Exception
    ):  # a user __eq__ or __bool__ raised (numpy...): let same_json and to_json judge
        return 0


def _exactly_equal(old: list[JSON], new: list[Any]) -> bool:
    """Whether two lists known to be `==` are the same JSON, in C-level passes.

    - A str equal to a str is the same JSON value, and a list of strings (tokens) is the
      common case: `_all_str` settles it.
    - Identical objects are equal: the shadow shares its leaves with the user's data.
    - Otherwise orjson, which tells 1, 1.0, true and -0.0 apart, serializes both sides.
    """
    if _all_str(old) or all(map(is_, old, new)):
        return True
    try:
        return orjson.dumps(old, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
            new, option=orjson.OPT_SORT_KEYS
        )
    except TypeError:  # not serializable as is (big int, float subclass...): compare in Python
        return False


def _all_str(items: list[JSON]) -> bool:
    """Whether every item is a str, checked in C.

    `str.startswith` rejects a tuple holding anything but strings, and no string can start
    "" at position 1, so it checks every item without ever returning early.
    """
    try:
        return not "".startswith(cast("tuple[str, ...]", tuple(items)), 1)
    except TypeError:
        return False
