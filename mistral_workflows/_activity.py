"""`@workflows.activity()`: Temporal's activity decorator under the reference doc's name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from temporalio import activity as temporal_activity

__all__ = ["activity"]

F = TypeVar("F", bound=Callable[..., Any])


@overload
def activity(fn: F, /) -> F: ...


@overload
def activity(
    *, name: str | None = None, dynamic: bool = False, no_thread_cancel_exception: bool = False
) -> Callable[[F], F]: ...


def activity(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    dynamic: bool = False,
    no_thread_cancel_exception: bool = False,
) -> F | Callable[[F], F]:
    """Declare a Temporal activity; `Task` can be used inside it on a plugged worker.

    Usable as `@activity`, `@activity()` or `@activity(name="Readable name")`.

    Args:
        fn: The activity function (when used without parentheses).
        name: The activity's registered name (default: the function name).
        dynamic: Register as Temporal's dynamic activity.
        no_thread_cancel_exception: See `temporalio.activity.defn`.
    """

    def decorate(f: F) -> F:
        if dynamic:
            return temporal_activity.defn(
                dynamic=True, no_thread_cancel_exception=no_thread_cancel_exception
            )(f)
        return temporal_activity.defn(
            name=name, no_thread_cancel_exception=no_thread_cancel_exception
        )(f)

    return decorate(fn) if fn is not None else decorate
