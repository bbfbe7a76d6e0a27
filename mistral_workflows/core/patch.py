"""JSON-patch deltas between task states: validate (`to_json`), `diff` and `apply`.

The producer keeps a *shadow*: a private, pure-JSON copy of the last state it published. Each
update is published as the ops turning the shadow into the user's new values: RFC 6902 (add,
remove, replace, move, copy, test) plus `append`, a string extension
(`{"op": "append", "path": "/text", "value": "lo"}` appends "lo" to the string at /text).
Paths are RFC 6901 pointers.

`diff` runs on every token of an LLM stream, so in the streaming shapes (a list or a string
growing at its end, a few keys changing) its Python work is O(change). What stays proportional
to the state is a few C-level passes over a list's pointers (a few ns per element).

JSON semantics are exact: 1, 1.0 and True are three different values, and so are 0.0 and -0.0.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Callable, Iterable, Mapping
from datetime import date, time
from decimal import Decimal
from itertools import compress, count, repeat
from operator import is_, is_not, ne
from types import NoneType
from typing import Any, TypeAlias, cast

import orjson

from mistral_workflows.core.errors import InvalidStateError, PatchError

__all__ = [
    "JSON",
    "Op",
    "StrLists",
    "apply",
    "apply_own",
    "diff",
    "escape",
    "merge",
    "to_json",
    "unescape",
]

JSON: TypeAlias = bool | int | float | str | list["JSON"] | dict[str, "JSON"] | None
Op: TypeAlias = dict[str, Any]

# Where a value sits: the pointer a walk started from, extended by (parent, key) pairs. The
# pointer string is only built when an error needs it.
_Loc: TypeAlias = str | tuple["_Loc", str | int]
# A container being copied by `to_json`: source, its copy, where it sits, its nesting level.
_Frame: TypeAlias = tuple[Any, list[JSON] | dict[str, JSON], _Loc, int]

# Exact types a copy can share as they are (immutable, always valid); floats need a check.
_VERBATIM = frozenset({str, int, bool, NoneType})
# The JSON type each accepted Python type converts to; subclasses are found via _BASES.
_KINDS: dict[type, type] = {
    NoneType: NoneType,
    bool: bool,
    int: int,
    float: float,
    str: str,
    list: list,
    tuple: list,
    dict: dict,
}
_BASES = (str, int, float, list, tuple, dict)  # bool cannot be subclassed
_HINTS: tuple[tuple[tuple[type, ...], str], ...] = (
    ((set, frozenset), "convert it to a list, e.g. sorted(value)"),
    ((bytes, bytearray, memoryview), "decode it to str (or base64-encode binary data)"),
    (
        (date, time),
        "convert it to an ISO string with value.isoformat(), or use a pydantic model as state",
    ),
    ((Decimal,), "convert it to str (exact) or to float"),
)
_OTHER_HINT = (
    "use only dict, list, tuple, str, int, float, bool and None: convert it first "
    "(e.g. a pydantic model with model_dump(mode='json'))"
)
_MISSING = object()
_BAD_ESCAPE = re.compile(r"~(?![01])")
# Values copied by `apply` come from parsed JSON; the walk is iterative, so any depth is safe.
_APPLY_MAX_DEPTH = 100_000
_repr = reprlib.Repr()  # short reprs for error messages: values can be huge
_repr.maxstring = _repr.maxother = 60
_short = _repr.repr


# --- validation and copy ------------------------------------------------------------------


def to_json(value: object, *, path: str = "", max_depth: int = 64) -> JSON:
    """Return an independent pure-JSON copy of `value`.

    Tuples become lists and subclasses of str/int/float (StrEnum, IntEnum...) their base type.
    Containers are copied; immutable leaves are shared. The walk is iterative, so deep or
    cyclic input fails with a clear error, never with RecursionError.

    Args:
        value: The value to copy.
        path: The RFC 6901 pointer of `value`, used in error messages.
        max_depth: The most containers allowed inside one another.

    Returns:
        A copy made only of dict (str keys), list, str, int, float, bool and None.

    Raises:
        InvalidStateError: Something in `value` is not JSON; the message names its path.
    """
    return _to_json(value, path, 0, max_depth)


def _to_json(value: Any, loc: _Loc, depth: int, max_depth: int) -> JSON:
    """`to_json` for a value with `depth` containers above it."""
    if type(value) in _VERBATIM:
        return cast("JSON", value)
    if isinstance(value, list | tuple | dict):
        stack: list[_Frame] = []
        root = _open(value, loc, depth + 1, max_depth, stack)
        while stack:
            _fill(*stack.pop(), max_depth, stack)
        return root
    return _scalar(value, loc)


def _open(value: Any, loc: _Loc, level: int, max_depth: int, stack: list[_Frame]) -> JSON:
    """Return an empty copy of container `value`, queued on `stack` to be filled."""
    if level > max_depth:
        raise _invalid(
            loc,
            f"is nested deeper than {max_depth} levels, or contains a reference cycle",
            "flatten the state or break the cycle",
        )
    copy: list[JSON] | dict[str, JSON] = {} if isinstance(value, dict) else []
    stack.append((value, copy, loc, level))
    return copy


def _fill(
    src: Any,
    dst: list[JSON] | dict[str, JSON],
    loc: _Loc,
    level: int,
    max_depth: int,
    stack: list[_Frame],
) -> None:
    """Copy the items of `src` into `dst`; nested containers are queued, not recursed into."""
    if isinstance(dst, list):
        for index, item in enumerate(src):
            dst.append(_item(item, (loc, index), level, max_depth, stack))
        return
    for key, item in src.items():
        name = key if type(key) is str else _key(key, loc)
        dst[name] = _item(item, (loc, name), level, max_depth, stack)


def _item(item: Any, loc: _Loc, level: int, max_depth: int, stack: list[_Frame]) -> JSON:
    """The copy of one item of a container at `level`."""
    if type(item) in _VERBATIM:
        return cast("JSON", item)
    if isinstance(item, list | tuple | dict):
        return _open(item, loc, level + 1, max_depth, stack)
    return _scalar(item, loc)


def _scalar(value: object, loc: _Loc) -> JSON:
    """Validate a leaf and convert str/int/float subclasses to the exact base type."""
    if value is None or type(value) is bool:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float.__float__(value)
        raise _invalid(loc, f"is {value!r}, which is not valid JSON", "use None or a string")
    hint = next((hint for types, hint in _HINTS if isinstance(value, types)), _OTHER_HINT)
    raise _invalid(loc, f"has type {_type_name(value)}, which is not JSON", hint)


def _key(key: object, loc: _Loc) -> str:
    """A dict key as an exact str; JSON object keys cannot be anything else."""
    if isinstance(key, str):
        return str.__str__(key)
    raise _invalid(
        loc,
        f"has the non-str key {_short(key)} ({_type_name(key)})",
        "JSON object keys must be strings: convert the key with str()",
    )


def _invalid(loc: _Loc, problem: str, hint: str) -> InvalidStateError:
    pointer = _pointer(loc)
    where = repr(pointer) if pointer else "'' (the root)"
    return InvalidStateError(f"task state at {where} {problem}: {hint}")


def _pointer(loc: _Loc) -> str:
    tokens: list[str] = []
    while isinstance(loc, tuple):
        loc, key = loc
        tokens.append(escape(str(key)))
    return loc + "".join(f"/{token}" for token in reversed(tokens))


def _type_name(value: object) -> str:
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _kind(value: object) -> type | None:
    """The JSON type `value` stands for (tuple -> list, StrEnum -> str...); None if not JSON."""
    kind = _KINDS.get(type(value))
    if kind is None:
        kind = next((_KINDS[base] for base in _BASES if isinstance(value, base)), None)
    return kind


# --- pointers -----------------------------------------------------------------------------


def escape(key: str) -> str:
    """Escape a dict key as an RFC 6901 pointer token (`~` -> `~0`, `/` -> `~1`).

    Args:
        key: The key.

    Returns:
        The token, ready to be joined with "/".
    """
    return key.replace("~", "~0").replace("/", "~1")


def unescape(token: str) -> str:
    """Turn an RFC 6901 pointer token back into the key it escapes.

    Args:
        token: The token, without its leading "/".

    Returns:
        The key.

    Raises:
        PatchError: The token has a `~` not followed by 0 or 1.
    """
    if "~" in token and _BAD_ESCAPE.search(token):
        raise PatchError(f"invalid pointer token {token!r}: '~' must be followed by 0 or 1")
    # "~1" first, so that "~01" becomes "~1" and not "/".
    return token.replace("~1", "/").replace("~0", "~")


# --- diff ---------------------------------------------------------------------------------


def diff(
    old: JSON,
    new: object,
    path: str = "",
    *,
    max_depth: int = 64,
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
        max_depth: The most containers allowed inside one another, counted from `path`.
        str_lists: What is known about `old`'s lists of strings, kept across calls by a
            producer that diffs against the same shadow again and again; it saves a pass
            over each long list of tokens (see `StrLists`).

    Returns:
        The ops, `[]` if nothing changed. Their values are independent copies.

    Raises:
        InvalidStateError: A changed part of `new` is not JSON; the message names its path.
    """
    differ = _Differ(max_depth, str_lists)
    differ.value(old, new, path, 0)
    return differ.ops


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
        if _kind(new) is not type(old):  # includes anything that is not JSON
            self.replace(new, path, depth)
        elif isinstance(old, str):
            self.diff_str(old, new, path)
        elif isinstance(old, dict | list):
            if depth >= self.max_depth:  # also bounds this recursion on cyclic `new`
                _to_json(new, path, depth, self.max_depth)  # raises the usual error
            if isinstance(old, dict):
                self.diff_dict(old, new, path, depth + 1)
            else:
                self.diff_list(old, new if isinstance(new, list) else list(new), path, depth + 1)
        elif not _same_scalar(old, new):
            self.replace(new, path, depth)

    def replace(self, new: Any, path: str, depth: int) -> None:
        self.ops.append(
            {"op": "replace", "path": path, "value": _to_json(new, path, depth, self.max_depth)}
        )

    def add(self, new: Any, path: str, depth: int) -> None:
        self.ops.append(
            {"op": "add", "path": path, "value": _to_json(new, path, depth, self.max_depth)}
        )

    def diff_str(self, old: str, new: str, path: str) -> None:
        if old == new:
            return
        if len(new) > len(old) and new.startswith(old):
            # Slicing gives an exact str even for a str subclass.
            self.ops.append({"op": "append", "path": path, "value": new[len(old) :]})
        else:
            self.ops.append({"op": "replace", "path": path, "value": str.__str__(new)})

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
            name = key if type(key) is str else _key(key, path)
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
    return next((i for i in range(end) if not _same(old[i], new[i])), end)


def _loose_prefix(old: list[JSON], new: list[Any]) -> int:
    """Length of the common `==` prefix of two lists of the same length, found in C."""
    try:
        if old == new:
            return len(old)
        return next(compress(count(), map(ne, old, new)), 0)
    except Exception:  # a user __eq__ or __bool__ raised (numpy...): let _same and to_json judge
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


def _same_scalar(old: Any, new: Any, *, numeric: bool = False) -> bool:
    """Equality of two scalars of the same JSON type; -0.0 differs from 0.0 unless `numeric`."""
    if old != new:
        return False
    return numeric or type(old) is not float or math.copysign(1.0, old) == math.copysign(1.0, new)


def _same(a: Any, b: Any, *, numeric: bool = False) -> bool:
    """Whether `a` and `b` are the same JSON value (iterative, so any depth is fine).

    Strict by default (1, 1.0 and True differ); with `numeric`, numbers compare by value as
    RFC 6902's `test` requires.
    """
    pairs: list[tuple[Any, Any]] = [(a, b)]
    while pairs:
        x, y = pairs.pop()
        if x is y:
            continue
        kind = _kind(x)
        if kind is None or kind is not _kind(y):
            if numeric and _is_number(x) and _is_number(y) and x == y:
                continue
            return False
        if kind is list:
            if len(x) != len(y):
                return False
            pairs.extend(zip(x, y, strict=True))
        elif kind is dict:
            if x.keys() != y.keys():
                return False
            pairs.extend((value, y[key]) for key, value in x.items())
        elif not _same_scalar(x, y, numeric=numeric):
            return False
    return True


def _is_number(value: object) -> bool:
    return type(value) is not bool and isinstance(value, int | float)


# --- merge -------------------------------------------------------------------------------

# How many of the latest ops `merge` looks back through for one on the same path.
_MERGE_WINDOW = 8
_SHIFTING = frozenset({"add", "remove"})  # on a list, they move the items after them


def merge(ops: list[Op], new_ops: Iterable[Op]) -> None:
    """Append `new_ops` to `ops`, folding each into a recent op on the same path if it can.

    The result applies exactly like `ops + new_ops`, in fewer and smaller ops: appends to one
    string become one append, a value replaced many times is sent once. Only ops the official
    models know (add, remove, replace, append) are folded; it is how a producer coalesces the
    updates made before it could send them.
    """
    for op in new_ops:
        if op["op"] not in ("append", "replace") or not _fold(ops, op):
            ops.append(op)


def _fold(ops: list[Op], op: Op) -> bool:
    """Fold `op` into the latest op on its path, unless an op in between depends on it."""
    path = op["path"]
    for index in range(len(ops) - 1, max(-1, len(ops) - 1 - _MERGE_WINDOW), -1):
        earlier = ops[index]
        if earlier["path"] == path:
            folded = _folded(earlier, op)
            if folded is None:
                return False
            # Moved to the end (nothing in between touches it), so that the next op on this
            # path finds it at once: a token stream keeps one append per event.
            del ops[index]
            ops.append(folded)
            return True
        if _interferes(earlier, path):
            return False
    return False


def _folded(earlier: Op, op: Op) -> Op | None:
    """The one op doing `earlier` then `op` (same path), or None if there is none."""
    kind, value = earlier["op"], earlier.get("value")
    if op["op"] == "replace":
        if kind in ("add", "replace", "append"):
            return {
                "op": "replace" if kind == "append" else kind,
                "path": op["path"],
                "value": op["value"],
            }
        return None
    # op is an append: only onto a string value
    if kind == "append" or (kind in ("add", "replace") and isinstance(value, str)):
        return {"op": kind, "path": op["path"], "value": value + op["value"]}
    return None


def _interferes(earlier: Op, path: str) -> bool:
    """Whether `earlier` touches `path`, one of its ancestors or children, or shifts it."""
    other = earlier["path"]
    if path.startswith(other + "/") or other.startswith(path + "/"):
        return True
    if earlier["op"] in _SHIFTING:
        return path.startswith(other.rpartition("/")[0] + "/")
    return False


# --- apply --------------------------------------------------------------------------------


def apply(doc: JSON, ops: Iterable[Mapping[str, Any]], *, copy_values: bool = True) -> JSON:
    """Apply `ops` to `doc` in order, in place where possible.

    Each op costs O(path depth + value size). On an error the ops before the failing one
    stay applied.

    Args:
        doc: The document; it is mutated.
        ops: RFC 6902 ops plus `append` (string concatenation, also on the root).
        copy_values: Deep-copy container values before inserting them, so that the ops (which
            consumers may keep) never share objects with `doc`. Pass False only for ops that
            are discarded afterwards. `copy` always copies.

    Returns:
        The new root: `doc` itself, unless an op replaced the root.

    Raises:
        PatchError: An op is invalid: unknown op, missing member, bad pointer, index out of
            range, `append` to a non-string, failed `test`...; the message names the op's
            index, name and path.
    """
    for index, op in enumerate(ops):
        try:
            doc = _apply_op(doc, op, copy_values)
        except PatchError as exc:
            raise PatchError(f"cannot apply op {index} ({_describe(op)}): {exc}") from None
    return doc


def apply_own(doc: JSON, ops: Iterable[Op]) -> JSON:
    """Apply ops made by `diff` to the document they were diffed from, in place.

    The producer's hot path: `diff`'s ops are valid for `doc` by construction (add, remove,
    replace, append on paths that exist), so they are applied without `apply`'s checks and
    their values are inserted as they are.
    """
    for op in ops:
        path = op["path"]
        if not path:
            doc = op["value"] if op["op"] != "append" else cast(str, doc) + op["value"]
            continue
        node: Any = doc
        *parents, last = path[1:].split("/")
        for token in parents:
            node = node[int(token)] if isinstance(node, list) else node[_own_key(token)]
        kind = op["op"]
        if isinstance(node, list):
            index = int(last)
            if kind == "add":
                node.insert(index, op["value"])
            elif kind == "remove":
                del node[index]
            elif kind == "replace":
                node[index] = op["value"]
            else:
                _append_in(node, index, op["value"])
        else:
            key = _own_key(last)
            if kind in ("add", "replace"):
                node[key] = op["value"]
            elif kind == "remove":
                del node[key]
            else:
                _append_in(node, key, op["value"])
    return doc


def _own_key(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~") if "~" in token else token


_Handler: TypeAlias = Callable[[JSON, Mapping[str, Any], bool], JSON]


def _apply_op(doc: JSON, op: Mapping[str, Any], copy_values: bool) -> JSON:
    if not isinstance(op, Mapping):
        raise PatchError(f"an op must be a mapping, found {_type_name(op)}")
    name = op.get("op")
    handler = _HANDLERS.get(name) if isinstance(name, str) else None
    if handler is None:
        raise PatchError(f"unknown op {name!r}: expected one of {', '.join(_HANDLERS)}")
    return handler(doc, op, copy_values)


def _describe(op: object) -> str:
    if not isinstance(op, Mapping):
        return _short(op)
    text = f"{op.get('op')!r} at {op.get('path')!r}"
    return f"{text} from {op['from']!r}" if "from" in op else text


def _op_add(doc: JSON, op: Mapping[str, Any], copy_values: bool) -> JSON:
    return _add(doc, _split(op, "path"), _value(op, copy_values))


def _op_remove(doc: JSON, op: Mapping[str, Any], copy_values: bool) -> JSON:
    _remove(doc, _split(op, "path"))
    return doc


def _op_replace(doc: JSON, op: Mapping[str, Any], copy_values: bool) -> JSON:
    tokens, value = _split(op, "path"), _value(op, copy_values)
    if not tokens:
        return value
    parent, key = _parent(doc, tokens)
    if isinstance(parent, dict):
        if key not in parent:
            raise PatchError(f"no member {key!r} to replace")
        parent[key] = value
    else:
        parent[_index(key, len(parent))] = value
    return doc


def _op_move(doc: JSON, op: Mapping[str, Any], copy_values: bool) -> JSON:
    source, target = _member(op, "from", str), _member(op, "path", str)
    if target == source:
        _get(doc, _tokens(source))  # must exist; nothing to move
        return doc
    if target.startswith(f"{source}/"):
        raise PatchError("cannot move a value into one of its own children")
    value = _remove(doc, _tokens(source))
    return _add(doc, _tokens(target), value)


def _op_copy(doc: JSON, op: Mapping[str, Any], copy_values: bool) -> JSON:
    # Always a deep copy: two places of one document must never share a container.
    value = _copy(_get(doc, _split(op, "from")))
    return _add(doc, _split(op, "path"), value)


def _op_test(doc: JSON, op: Mapping[str, Any], copy_values: bool) -> JSON:
    actual, expected = _get(doc, _split(op, "path")), _member(op, "value", object)
    if not _same(actual, expected, numeric=True):
        raise PatchError(f"test failed: the value is {_short(actual)}, not {_short(expected)}")
    return doc


def _op_append(doc: JSON, op: Mapping[str, Any], copy_values: bool) -> JSON:
    tokens = _split(op, "path")
    suffix: str = _member(op, "value", str)
    if not tokens:
        _check_str(doc)
        return cast(str, doc) + suffix
    parent, key = _parent(doc, tokens)
    if isinstance(parent, dict):
        _child(parent, key)  # must exist
        _append_in(parent, key, suffix)
    else:
        _append_in(parent, _index(key, len(parent)), suffix)
    return doc


def _append_in(container: Any, key: str | int, suffix: str) -> None:
    text = container[key]
    _check_str(text)
    # Drop the document's reference, so that `text` is the only one and CPython grows the
    # string in place instead of copying it: appending tokens to a long text stays O(token).
    container[key] = None
    text += suffix
    container[key] = text


def _check_str(text: JSON) -> None:
    if not isinstance(text, str):
        raise PatchError(f"'append' needs a string target, found {_type_name(text)}")


_HANDLERS: dict[str, _Handler] = {
    "add": _op_add,
    "remove": _op_remove,
    "replace": _op_replace,
    "move": _op_move,
    "copy": _op_copy,
    "test": _op_test,
    "append": _op_append,
}


def _member(op: Mapping[str, Any], name: str, kind: type) -> Any:
    if name not in op:
        raise PatchError(f"missing {name!r}")
    value = op[name]
    if not isinstance(value, kind):
        raise PatchError(f"{name!r} must be {kind.__name__}, found {_type_name(value)}")
    return value


def _value(op: Mapping[str, Any], copy_values: bool) -> JSON:
    value = _member(op, "value", object)
    return _copy(value) if copy_values else cast("JSON", value)


def _copy(value: Any) -> JSON:
    try:
        return _to_json(value, "", 0, _APPLY_MAX_DEPTH)
    except InvalidStateError as exc:
        raise PatchError(f"the value is not JSON: {exc}") from None


def _split(op: Mapping[str, Any], name: str) -> list[str]:
    return _tokens(_member(op, name, str))


def _tokens(pointer: str) -> list[str]:
    if not pointer:
        return []
    if pointer[0] != "/":
        raise PatchError(f"{pointer!r} is not a JSON pointer: it must be '' or start with '/'")
    return [unescape(token) for token in pointer[1:].split("/")]


def _get(doc: JSON, tokens: list[str]) -> JSON:
    if not tokens:
        return doc
    parent, key = _parent(doc, tokens)
    return _child(parent, key)


def _parent(doc: JSON, tokens: list[str]) -> tuple[list[JSON] | dict[str, JSON], str]:
    """The container holding the value at `tokens` (not the root), and its key there."""
    node = doc
    for token in tokens[:-1]:
        node = _child(node, token)
    if not isinstance(node, list | dict):
        raise PatchError(f"cannot look up {tokens[-1]!r} in {_type_name(node)}")
    return node, tokens[-1]


def _child(node: JSON, token: str) -> JSON:
    if isinstance(node, dict):
        if token not in node:
            raise PatchError(f"no member {token!r}")
        return node[token]
    if isinstance(node, list):
        return node[_index(token, len(node))]
    raise PatchError(f"cannot look up {token!r} in {_type_name(node)}")


def _add(doc: JSON, tokens: list[str], value: JSON) -> JSON:
    if not tokens:
        return value
    parent, key = _parent(doc, tokens)
    if isinstance(parent, dict):
        parent[key] = value
    else:
        parent.insert(_index(key, len(parent), end_ok=True), value)
    return doc


def _remove(doc: JSON, tokens: list[str]) -> JSON:
    """Remove the value at `tokens` and return it."""
    if not tokens:
        raise PatchError("cannot remove the root")
    parent, key = _parent(doc, tokens)
    if isinstance(parent, dict):
        if key not in parent:
            raise PatchError(f"no member {key!r} to remove")
        return parent.pop(key)
    return parent.pop(_index(key, len(parent)))


def _index(token: str, size: int, *, end_ok: bool = False) -> int:
    """The list index `token` stands for; `end_ok` allows `size` (and "-") for `add`."""
    if token == "-":
        if end_ok:
            return size
        raise PatchError("'-' (past the end of the list) only works with 'add'")
    if not (token.isascii() and token.isdigit()) or (token[0] == "0" and len(token) > 1):
        raise PatchError(f"{token!r} is not a list index")
    index = int(token)
    if index > size or (index == size and not end_ok):
        raise PatchError(f"index {index} is out of range for a list of {size} items")
    return index
