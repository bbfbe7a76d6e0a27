"""Tokens without servers: what they grant, and every way a token can be wrong."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mistral_workflows.core.errors import ConfigurationError
from mistral_workflows.gateway import TokenError, mint_token, verify_token
from mistral_workflows.gateway._tokens import CLOCK_LEEWAY, MAX_TTL

KEY = b"k" * 32


@given(namespace=st.text(min_size=1), root=st.none() | st.text(min_size=1))
def test_a_token_grants_what_it_was_minted_for(namespace, root):
    """Any namespace and root id (unicode, dots, wildcards) come back unchanged."""
    grant = verify_token(KEY, mint_token(KEY, namespace, root, ttl=60))
    assert (grant.namespace, grant.root_workflow_exec_id) == (namespace, root)


@given(position=st.integers(min_value=0), char=st.sampled_from("AaZz09-_"))
def test_any_changed_character_is_refused(position, char):
    """Changing one character anywhere gives a TokenError, never a grant."""
    token = mint_token(KEY, "default", "tree-a", ttl=60)
    index = position % len(token)
    if token[index] in (char, "."):
        return
    tampered = token[:index] + char + token[index + 1 :]
    try:
        grant = verify_token(KEY, tampered)
    except TokenError:
        return
    # base64url's last character can carry unused bits: the same bytes, the same claims.
    assert grant == verify_token(KEY, token)


def _forge(header: dict[str, str], claims: dict[str, object]) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}.{part('sig')}"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "malformed token"),
        ("a.b", "malformed token"),
        ("a.b.c.d", "malformed token"),
        ("!!.!!.!!", "malformed token"),
        (_forge({"alg": "none", "typ": "JWT"}, {"namespace": "x", "exp": 9e9}), "unsupported"),
        (_forge({"alg": "HS256", "typ": "JWT"}, {"namespace": "x", "exp": 9e9}), "signature"),
        (mint_token(b"o" * 32, "default"), "signature"),
        (mint_token(KEY, "default", ttl=5, now=0), "expired"),
    ],
)
def test_bad_tokens_name_the_problem(token, reason):
    """Malformed, unsigned, foreign and expired tokens are refused with a reason."""
    with pytest.raises(TokenError, match=reason):
        verify_token(KEY, token)


def test_minting_refuses_bad_settings():
    """A short secret, an empty namespace or root, or a TTL out of range is refused."""
    for args, kwargs in (
        ((b"short", "default"), {}),
        ((KEY, ""), {}),
        ((KEY, "default", ""), {}),
        ((KEY, "default"), {"ttl": 0}),
        ((KEY, "default"), {"ttl": 10**9}),
    ):
        with pytest.raises(ConfigurationError):
            mint_token(*args, **kwargs)


def _signed(claims: object, header: bytes = b'{"alg":"HS256","typ":"JWT"}') -> str:
    """A token signed with KEY whatever its claims (`mint_token` refuses bad ones); bytes
    are sent as they are."""

    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    body = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    signed = f"{part(header)}.{part(body)}"
    return f"{signed}.{part(hmac.new(KEY, signed.encode(), hashlib.sha256).digest())}"


def test_a_token_issued_in_the_future_is_refused():
    """A token minted on a clock 60 days ahead, with the longest lifetime, is refused now
    and until its issue time is within the leeway; one minted 30 s ahead is accepted."""
    now = time.time()
    ahead = mint_token(KEY, "default", ttl=MAX_TTL, now=now + 60 * 86400)
    with pytest.raises(TokenError, match="issued in the future"):
        verify_token(KEY, ahead, now=now)
    with pytest.raises(TokenError, match="issued in the future"):
        verify_token(KEY, ahead, now=now + 60 * 86400 - CLOCK_LEEWAY - 5)
    assert verify_token(KEY, ahead, now=now + 60 * 86400).namespace == "default"
    slightly = mint_token(KEY, "default", ttl=60, now=now + 30)
    assert verify_token(KEY, slightly, now=now).namespace == "default"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"namespace": "x", "iat": 0, "exp": MAX_TTL + 1}, "more than"),
        ({"namespace": "x", "exp": 9_000_000_000}, "iat"),
        ({"namespace": "x", "iat": True, "exp": 9_000_000_000}, "iat"),
        ({"namespace": "x", "iat": 0, "exp": 9e9}, "exp"),
        ({"namespace": ["x" * 2000]}, "malformed"),
    ],
)
def test_signed_tokens_with_bad_claims_are_refused(claims, reason):
    """A signed token lasting over 30 days, or without an integer iat and exp, is refused."""
    with pytest.raises(TokenError, match=reason):
        verify_token(KEY, _signed(claims), now=1000)


def test_deeply_nested_json_is_a_token_error():
    """A header or signed claims nested 2,000 deep give a TokenError, not RecursionError."""
    nested = b"[" * 2000 + b"]" * 2000
    with pytest.raises(TokenError, match="unsupported"):
        verify_token(KEY, _signed({"namespace": "x"}, header=nested))
    with pytest.raises(TokenError, match="not JSON"):
        verify_token(KEY, _signed(nested))
