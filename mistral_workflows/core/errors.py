"""The library's errors: one base class and the few cases a caller handles differently."""

from __future__ import annotations

__all__ = [
    "BrokerConnectionError",
    "ConfigurationError",
    "DecryptionError",
    "InvalidStateError",
    "MistralWorkflowsError",
    "NotInPluggedActivityError",
    "PatchError",
    "PayloadTooLargeError",
    "PublishError",
    "StreamMismatchError",
    "TokenError",
    "redact_url",
]


class MistralWorkflowsError(Exception):
    """Base class of every error raised by mistral_workflows."""


class ConfigurationError(MistralWorkflowsError, ValueError):
    """A setting or argument is invalid (a bad task type, NATS URL, stream setting...)."""


class InvalidStateError(MistralWorkflowsError, TypeError):
    """Task state that cannot be sent as JSON (a set, bytes, NaN, a cycle, deep nesting...)."""


class PatchError(MistralWorkflowsError, ValueError):
    """A JSON patch cannot be applied: unknown op, missing member, bad index or pointer..."""


class PayloadTooLargeError(MistralWorkflowsError, ValueError):
    """An event is larger than the configured limit or the server's max_payload."""


class NotInPluggedActivityError(MistralWorkflowsError, RuntimeError):
    """`Task` was used outside an activity of a worker that has the plugin installed."""


class BrokerConnectionError(MistralWorkflowsError, ConnectionError):
    """The NATS server cannot be reached, refuses our credentials, or has no JetStream."""


class PublishError(MistralWorkflowsError):
    """Events could not be persisted by JetStream in time (NATS down, permissions...)."""


class StreamMismatchError(MistralWorkflowsError):
    """The JetStream stream exists with settings that conflict with the requested ones."""


class DecryptionError(MistralWorkflowsError):
    """Encrypted task state that cannot be decrypted: no key, an unknown key id, a wrong
    key, or a value altered or moved from another event."""


class TokenError(MistralWorkflowsError):
    """A bearer token is missing, malformed, badly signed or expired (HTTP 401)."""


def redact_url(url: str) -> str:
    """`url` without its password or token, fit for error messages and logs."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return parts._replace(netloc=f"***@{host}").geturl()
