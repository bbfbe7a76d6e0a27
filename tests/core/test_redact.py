"""Failure messages lose obvious credentials before they are stored."""

from __future__ import annotations

import pytest

from mistral_workflows.core.redact import redact


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("connect to postgres://app:hunter2@db:5432/x failed", "hunter2"),
        ("bad config password=hunter2 for user", "hunter2"),
        ('{"api_key": "abc123def456"} rejected', "abc123def456"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("openai error with key sk-proj-AbCdEfGhIjKlMnOpQrStUv", "AbCdEfGhIjKlMnOpQrStUv"),
        ("token: ghp_abcdefghijklmnopqrstuvwxyz0123", "ghp_abcdefghijklmnop"),
        ("aws AKIAIOSFODNN7EXAMPLE denied", "AKIAIOSFODNN7EXAMPLE"),
    ],
)
def test_secrets_are_masked(text, secret):
    """Each kind of credential is replaced by *** and the rest of the message is kept."""
    masked = redact(text)
    assert secret not in masked and "***" in masked
    assert masked.split()[0] == text.split()[0]


def test_ordinary_messages_are_unchanged():
    """A message without credentials is left exactly as it was."""
    text = "ValueError: model quota exceeded after 3 tries (tokens used: 4096)"
    assert redact("division by zero") == "division by zero"
    assert redact("RuntimeError: attempt 2 failed") == "RuntimeError: attempt 2 failed"
    assert "4096" in redact(text)
