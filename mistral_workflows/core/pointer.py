"""RFC 6901 JSON-pointer tokens: `escape` a dict key into one, `unescape` it back."""

from __future__ import annotations

import re

from mistral_workflows.core.errors import PatchError

__all__ = ["escape", "unescape"]

_BAD_ESCAPE = re.compile(r"~(?![01])")


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
