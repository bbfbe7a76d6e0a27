"""Pure JSON values: the `JSON` type, `to_json` to validate and copy, and exact equality.

JSON semantics are exact: 1, 1.0 and True are three different values, and so are 0.0 and -0.0.
"""

from __future__ import annotations

import math
import re
import reprlib
from datetime import date, time
from decimal import Decimal
from types import NoneType
from typing import Any, TypeAlias, cast

from mistral_workflows.core.errors import InvalidStateError
from mistral_workflows.core.pointer import escape

__all__ = [
    "JSON",
    "MAX_DEPTH",
    "check_int",
    "check_str",
    "json_key",
    "json_kind",
    "same_json",
    "same_scalar",
    "short_repr",
    "to_json",
    "to_json_at",
    "type_name",
    "utf8_safe",
]

JSON: TypeAlias = bool | int | float | str | list["JSON"] | dict[str, "JSON"] | None

MAX_DEPTH = 64
"""The most containers allowed inside one another in task state, counted from the root."""

# Where a value sits: the pointer a walk started from, extended by (parent, key) pairs. The
# pointer string is only built when an error needs it.
_Loc: TypeAlias = str | tuple["_Loc", str | int]
# A container being copied by `to_json`: source, its copy, where it sits, its nesting level.
_Frame: TypeAlias = tuple[Any, list[JSON] | dict[str, JSON], _Loc, int]

# A copy shares an exact str as it is once it is ASCII (it then holds no lone surrogate),
# and an exact int in the range orjson (and JSON parsers in other languages) take: checks
# in C for the usual leaves. Anything else goes to `_scalar`, which checks it fully.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")
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
_repr = reprlib.Repr()  # short reprs for error messages: values can be huge
_repr.maxstring = _repr.maxother = 60
short_repr = _repr.repr


# --- validation and copy ------------------------------------------------------------------


def to_json(value: object, *, path: str = "", max_depth: int = MAX_DEPTH) -> JSON:
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
    return to_json_at(value, path, 0, max_depth)


def to_json_at(value: Any, loc: _Loc, depth: int, max_depth: int) -> JSON:
    """`to_json` for a value with `depth` containers above it."""
    kind = type(value)
    if (kind is str and value.isascii()) or (kind is int and _INT_MIN <= value <= _INT_MAX):
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
        name = key if type(key) is str and key.isascii() else json_key(key, loc)
        dst[name] = _item(item, (loc, name), level, max_depth, stack)


def _item(item: Any, loc: _Loc, level: int, max_depth: int, stack: list[_Frame]) -> JSON:
    """The copy of one item of a container at `level`."""
    kind = type(item)
    if (kind is str and item.isascii()) or (kind is int and _INT_MIN <= item <= _INT_MAX):
        return cast("JSON", item)
    if isinstance(item, list | tuple | dict):
        return _open(item, loc, level + 1, max_depth, stack)
    return _scalar(item, loc)


def _scalar(value: object, loc: _Loc) -> JSON:
    """Validate a leaf and convert str/int/float subclasses to the exact base type."""
    if value is None or type(value) is bool:
        return value
    if isinstance(value, str):
        return check_str(str.__str__(value), loc)
    if isinstance(value, int):
        return check_int(int.__int__(value), loc)
    if isinstance(value, float):
        if math.isfinite(value):
            return float.__float__(value)
        raise _invalid(loc, f"is {value!r}, which is not valid JSON", "use None or a string")
    hint = next((hint for types, hint in _HINTS if isinstance(value, types)), _OTHER_HINT)
    raise _invalid(loc, f"has type {type_name(value)}, which is not JSON", hint)


def utf8_safe(text: str) -> bool:
    """Whether `text` holds no lone surrogate, so that UTF-8 can encode it."""
    return _SURROGATE.search(text) is None


def check_str(text: str, loc: _Loc, what: str = "a str") -> str:
    """`text` if it can be sent: no lone surrogate (UTF-8 cannot encode one)."""
    found = None if text.isascii() else _SURROGATE.search(text)
    if found is None:
        return text
    problem = f"has {what} holding the lone surrogate {found.group()!r}, which UTF-8 "
    hint = "remove it, or decode the source bytes with errors='replace'"
    raise _invalid(loc, problem + "(and so JSON on the wire) cannot encode", hint)


def check_int(number: int, loc: _Loc) -> int:
    """`number` if it is in the 64-bit range that orjson and most JSON parsers accept."""
    if _INT_MIN <= number <= _INT_MAX:
        return number
    raise _invalid(
        loc,
        f"has an integer outside the 64-bit range ({short_repr(number)}); integers must be "
        "from -2**63 to 2**64-1",
        "send a larger number as a str (str(value)) or a float",
    )


def json_key(key: object, loc: _Loc) -> str:
    """A dict key as an exact str; JSON object keys cannot be anything else."""
    if isinstance(key, str):
        return check_str(str.__str__(key), loc, f"the key {short_repr(key)}")
    raise _invalid(
        loc,
        f"has the non-str key {short_repr(key)} ({type_name(key)})",
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


def type_name(value: object) -> str:
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def json_kind(value: object) -> type | None:
    """The JSON type `value` stands for (tuple -> list, StrEnum -> str...); None if not JSON."""
    kind = _KINDS.get(type(value))
    if kind is None:
        kind = next((_KINDS[base] for base in _BASES if isinstance(value, base)), None)
    return kind


# --- exact equality -----------------------------------------------------------------------


def same_scalar(old: Any, new: Any, *, numeric: bool = False) -> bool:
    """Equality of two scalars of the same JSON type; -0.0 differs from 0.0 unless `numeric`."""
    if old != new:
        return False
    return numeric or type(old) is not float or math.copysign(1.0, old) == math.copysign(1.0, new)


def same_json(a: Any, b: Any, *, numeric: bool = False) -> bool:
    """Whether `a` and `b` are the same JSON value (iterative, so any depth is fine).

    Strict by default (1, 1.0 and True differ); with `numeric`, numbers compare by value as
    RFC 6902's `test` requires.
    """
    pairs: list[tuple[Any, Any]] = [(a, b)]
    while pairs:
        x, y = pairs.pop()
        if x is y:
            continue
        kind = json_kind(x)
        if kind is None or kind is not json_kind(y):
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
        elif not same_scalar(x, y, numeric=numeric):
            return False
    return True


def _is_number(value: object) -> bool:
    return type(value) is not bool and isinstance(value, int | float)
