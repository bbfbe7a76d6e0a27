"""Tests of mistral_workflows.core.pointer: escape and unescape."""

from __future__ import annotations

import pytest

from mistral_workflows.core.pointer import escape, unescape
from tests.core.json_support import roundtrip


@pytest.mark.parametrize(
    ("key", "token"), [("a/b", "a~1b"), ("~", "~0"), ("~1", "~01"), ("/~", "~1~0"), ("", "")]
)
def test_escape_and_unescape(key: str, token: str) -> None:
    """Keys escape to RFC 6901 tokens and back."""
    assert (escape(key), unescape(token)) == (token, key)


def test_keys_with_slash_and_tilde_are_escaped_in_ops() -> None:
    """Keys containing / and ~ give escaped paths that apply resolves."""
    ops = roundtrip({"a/b": {"~": 1}}, {"a/b": {"~": 2}, "~1": 3})
    assert [op["path"] for op in ops] == ["/a~1b/~0", "/~01"]
