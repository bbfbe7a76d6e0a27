"""Redaction of obvious credentials in failure messages, which are stored in clear text."""

from __future__ import annotations

import re

__all__ = ["redact"]

_MASK = "***"

_PATTERNS = [
    # Authorization: Bearer xyz (before key=value, which would stop at 'Bearer')
    (re.compile(r"(?P<keep>\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\g<keep>"),
    # user:password@host in URLs
    (re.compile(r"(?P<keep>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:)[^@\s/]+(?=@)"), r"\g<keep>"),
    # key=value and key: value for the usual secret names
    (
        re.compile(
            r"(?P<keep>\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|"
            r"client[_-]?secret|authorization)\b[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+",
            re.IGNORECASE,
        ),
        r"\g<keep>",
    ),
    # API keys with well-known prefixes (sk-..., ghp_..., xoxb-..., AKIA...)
    (re.compile(r"(?P<keep>)\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}"), r"\g<keep>"),
    (re.compile(r"(?P<keep>)\b(?:ghp|gho|ghu|ghs|github_pat)_[A-Za-z0-9_]{20,}"), r"\g<keep>"),
    (re.compile(r"(?P<keep>)\bxox[abprs]-[A-Za-z0-9-]{10,}"), r"\g<keep>"),
    (re.compile(r"(?P<keep>)\bAKIA[0-9A-Z]{16}\b"), r"\g<keep>"),
]


def redact(text: str) -> str:
    """`text` with passwords, tokens and API keys that look obvious replaced by ***."""
    for pattern, keep in _PATTERNS:
        text = pattern.sub(keep + _MASK, text)
    return text
