"""JSON-patch ops between task states: `merge` them and `apply` them.

The ops are RFC 6902 (add, remove, replace, move, copy, test) plus `append`, a string extension
(`{"op": "append", "path": "/text", "value": "lo"}` appends "lo" to the string at /text).
Paths are RFC 6901 pointers (see `mistral_workflows.core.pointer`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias, cast

from mistral_workflows.core.errors import InvalidStateError, PatchError
from mistral_workflows.core.json_value import JSON, same_json, short_repr, to_json_at, type_name
from mistral_workflows.core.pointer import unescape

__all__ = ["Op", "apply", "apply_own", "merge"]

Op: TypeAlias = dict[str, Any]

# Values copied by `apply` come from parsed JSON; the walk is iterative, so any depth is safe.
_APPLY_MAX_DEPTH = 100_000


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
            if earlier["op"] == "add":
                # An add may insert into a list, shifting the items that the ops in between
                # name: it keeps its place.
                ops[index] = folded
            else:
                # Moved to the end (nothing in between touches it), so that the next op on
                # this path finds it at once: a token stream keeps one append per event.
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
        raise PatchError(f"an op must be a mapping, found {type_name(op)}")
    name = op.get("op")
    handler = _HANDLERS.get(name) if isinstance(name, str) else None
    if handler is None:
        raise PatchError(f"unknown op {name!r}: expected one of {', '.join(_HANDLERS)}")
    return handler(doc, op, copy_values)


def _describe(op: object) -> str:
    if not isinstance(op, Mapping):
        return short_repr(op)
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
    if not same_json(actual, expected, numeric=True):
        raise PatchError(
            f"test failed: the value is {short_repr(actual)}, not {short_repr(expected)}"
        )
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
        raise PatchError(f"'append' needs a string target, found {type_name(text)}")


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
        raise PatchError(f"{name!r} must be {kind.__name__}, found {type_name(value)}")
    return value


def _value(op: Mapping[str, Any], copy_values: bool) -> JSON:
    value = _member(op, "value", object)
    return _copy(value) if copy_values else cast("JSON", value)


def _copy(value: Any) -> JSON:
    try:
        return to_json_at(value, "", 0, _APPLY_MAX_DEPTH)
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
        raise PatchError(f"cannot look up {tokens[-1]!r} in {type_name(node)}")
    return node, tokens[-1]


def _child(node: JSON, token: str) -> JSON:
    if isinstance(node, dict):
        if token not in node:
            raise PatchError(f"no member {token!r}")
        return node[token]
    if isinstance(node, list):
        return node[_index(token, len(node))]
    raise PatchError(f"cannot look up {token!r} in {type_name(node)}")


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
