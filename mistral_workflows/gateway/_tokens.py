"""Access tokens for the gateway: HMAC-SHA256 signed, scoped to a namespace and optionally
to one workflow tree.

A token is a compact JWT (`header.claims.signature`, base64url, HS256) made with the
standard library only, so that any JWT library can inspect one. Claims: `namespace`,
`root_workflow_exec_id` (absent: the whole namespace), `iat` and `exp` (Unix seconds).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass
from typing import Any, TypeGuard

from mistral_workflows.core.errors import ConfigurationError, TokenError

__all__ = [
    "MIN_SECRET_BYTES",
    "SECRET_ENV",
    "Grant",
    "check_secret",
    "mint_token",
    "secret_from_env",
    "verify_token",
]

SECRET_ENV = "MISTRAL_WORKFLOWS_GATEWAY_SECRET"
"""The environment variable that holds the signing secret of the gateway and `token`."""

MIN_SECRET_BYTES = 32
"""A shorter secret could be guessed offline from one token: refuse it."""

MAX_TTL = 30 * 24 * 3600
CLOCK_LEEWAY = 60
"""Seconds a token's `iat` may lie ahead of this clock (the minting machine's may run fast)."""
_HEADER = {"alg": "HS256", "typ": "JWT"}
# Far longer than any token `mint_token` makes; the header is read before the signature is
# checked, so it is bounded tightly (ours is 36 characters).
_MAX_TOKEN = 16384
_MAX_HEADER = 128


@dataclass(frozen=True, slots=True)
class Grant:
    """What a request may read: one namespace (None: any, in development mode) and,
    optionally, one workflow tree."""

    namespace: str | None
    root_workflow_exec_id: str | None = None
    expires_at: int | None = None


def check_secret(secret: bytes) -> bytes:
    """Return `secret` if it is long enough to sign tokens.

    Raises:
        ConfigurationError: it is shorter than `MIN_SECRET_BYTES`.
    """
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"the gateway secret must be at least {MIN_SECRET_BYTES} bytes, not {len(secret)}; "
            'make one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
        )
    return secret


def secret_from_env() -> bytes | None:
    """The secret in `SECRET_ENV`, checked, or None when the variable is unset or empty."""
    value = os.environ.get(SECRET_ENV, "").strip()
    return check_secret(value.encode()) if value else None


def mint_token(
    secret: bytes,
    namespace: str,
    root_workflow_exec_id: str | None = None,
    ttl: float = 3600,
    now: float | None = None,
) -> str:
    """Make a token that reads `namespace` (and only the tree of `root_workflow_exec_id`,
    when given) for `ttl` seconds.

    Raises:
        ConfigurationError: the secret is too short, the namespace empty or the TTL out of
            range (1 s to 30 days).
    """
    check_secret(secret)
    if not isinstance(namespace, str) or not namespace:
        raise ConfigurationError("a token needs a non-empty namespace")
    if root_workflow_exec_id is not None and not root_workflow_exec_id:
        raise ConfigurationError("the root workflow execution id must not be empty")
    if not 1 <= ttl <= MAX_TTL:
        raise ConfigurationError(f"the TTL must be 1 to {MAX_TTL} seconds, not {ttl}")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"namespace": namespace, "iat": issued, "exp": issued + int(ttl)}
    if root_workflow_exec_id is not None:
        claims["root_workflow_exec_id"] = root_workflow_exec_id
    signed = f"{_encode(_HEADER)}.{_encode(claims)}"
    return f"{signed}.{_b64(_sign(secret, signed))}"


def verify_token(secret: bytes, token: str, now: float | None = None) -> Grant:
    """Check a token's signature, issue time and expiry; return what it grants.

    Raises:
        TokenError: the token is malformed, signed with another secret, issued in the
            future (beyond `CLOCK_LEEWAY`), made to last longer than `MAX_TTL` or expired.
    """
    if len(token) > _MAX_TOKEN:
        raise TokenError(f"malformed token: longer than {_MAX_TOKEN} characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("malformed token: expected header.claims.signature")
    if len(parts[0]) > _MAX_HEADER or _decode(parts[0]) != _HEADER:
        raise TokenError("unsupported token: only HS256 tokens made by `mistral-workflows token`")
    expected = _sign(secret, f"{parts[0]}.{parts[1]}")
    if not hmac.compare_digest(expected, _unb64(parts[2])):
        raise TokenError("bad token signature: it was not made with this gateway's secret")
    # The claims are only read once they are known to be ours.
    return _grant(_decode(parts[1]), time.time() if now is None else now)


def _grant(claims: dict[str, Any], now: float) -> Grant:
    namespace, root = claims.get("namespace"), claims.get("root_workflow_exec_id")
    issued, expires = claims.get("iat"), claims.get("exp")
    if not isinstance(namespace, str) or not _seconds(issued) or not _seconds(expires):
        raise TokenError("malformed token: namespace, iat and exp claims are required")
    if root is not None and not isinstance(root, str):
        raise TokenError("malformed token: root_workflow_exec_id must be a string")
    if issued > now + CLOCK_LEEWAY:
        raise TokenError(
            f"token issued in the future ({issued - now:.0f} s ahead of this clock): check the "
            "clock of the machine that minted it, and mint a new one"
        )
    if expires - issued > MAX_TTL:
        raise TokenError(f"malformed token: made to last more than {MAX_TTL} seconds")
    if expires <= now:
        raise TokenError("expired token: mint a new one with `mistral-workflows token`")
    return Grant(namespace, root, expires)


def _seconds(value: object) -> TypeGuard[int]:
    # JSON's true and false are ints to Python; a time is never one.
    return isinstance(value, int) and not isinstance(value, bool)


def _sign(secret: bytes, signed: str) -> bytes:
    return hmac.new(secret, signed.encode("ascii"), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("malformed token: not base64url") from None


def _encode(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())


def _decode(part: str) -> dict[str, Any]:
    try:
        value = json.loads(_unb64(part))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise TokenError("malformed token: not JSON") from None
    if not isinstance(value, dict):
        raise TokenError("malformed token: not a JSON object")
    return value
