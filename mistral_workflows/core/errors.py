"""The library's errors: one base class and the few cases a caller handles differently."""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "InvalidStateError",
    "MistralWorkflowsError",
    "NotInPluggedActivityError",
    "PayloadTooLargeError",
    "PublishError",
    "StreamMismatchError",
]


class MistralWorkflowsError(Exception):
    """Base class of every error raised by mistral_workflows."""


class ConfigurationError(MistralWorkflowsError, ValueError):
    """A setting or argument is invalid (a bad task type, NATS URL, stream setting...)."""


class InvalidStateError(MistralWorkflowsError, TypeError):
    """Task state that cannot be sent as JSON (a set, bytes, NaN, a cycle, deep nesting...)."""


class PayloadTooLargeError(MistralWorkflowsError, ValueError):
    """An event is larger than the configured limit or the server's max_payload."""


class NotInPluggedActivityError(MistralWorkflowsError, RuntimeError):
    """`Task` was used outside an activity of a worker that has the plugin installed."""


class PublishError(MistralWorkflowsError):
    """Events could not be persisted by JetStream in time (NATS down, permissions...)."""


class StreamMismatchError(MistralWorkflowsError):
    """The JetStream stream exists with settings that conflict with the requested ones."""
