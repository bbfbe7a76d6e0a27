"""Provisioning the JetStream streams: create them if missing, never change an existing
one, or only check that they exist."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js.api import StorageType, StreamConfig
from nats.js.client import JetStreamContext

from mistral_workflows.core.connection import denied, permitted
from mistral_workflows.core.errors import (
    BrokerConnectionError,
    ConfigurationError,
    StreamMismatchError,
)
from mistral_workflows.core.refusal import NATS_CLI, StreamState
from mistral_workflows.core.subjects import (
    DEFAULT_PREFIX,
    DEFAULT_STREAM_NAME,
    snapshot_prefix,
    snapshot_stream,
    stream_subjects,
)

__all__ = ["StreamSettings", "provision", "restore", "streams_ready"]

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """The JetStream stream that stores every event.

    Args:
        name: The stream name.
        prefix: The subject prefix; the stream captures `<prefix>.>`.
        max_age: How long events are kept.
        max_event_bytes: The largest event (headers included), also the stream's max_msg_size.
        duplicate_window: How long JetStream remembers message ids to drop re-sent events.
        replicas: Copies of each event (3 on a cluster for fault tolerance).
    """

    name: str = DEFAULT_STREAM_NAME
    prefix: str = DEFAULT_PREFIX
    max_age: timedelta = timedelta(days=7)
    max_event_bytes: int = 1024 * 1024
    duplicate_window: timedelta = timedelta(minutes=2)
    replicas: int = 1

    def __post_init__(self) -> None:
        if not self.name or not set(self.name) <= _NAME_CHARS or len(self.name) > 64:
            raise ConfigurationError(
                f"stream name {self.name!r} is invalid: use 1-64 letters, digits, '_' or '-'"
            )
        if self.max_age <= timedelta(0) or self.duplicate_window <= timedelta(0):
            raise ConfigurationError("max_age and duplicate_window must be positive durations")
        if self.duplicate_window > self.max_age:
            raise ConfigurationError("duplicate_window cannot be longer than max_age")
        if not 1 <= self.replicas <= 5:
            raise ConfigurationError(f"replicas must be between 1 and 5, not {self.replicas}")
        if self.max_event_bytes < 1024:
            raise ConfigurationError(
                f"max_event_bytes must be at least 1024, not {self.max_event_bytes}"
            )

    def snapshot_config(self) -> StreamConfig:
        """The stream that keeps the latest snapshot of each task, for late joiners."""
        return StreamConfig(
            name=snapshot_stream(self.name),
            subjects=[stream_subjects(snapshot_prefix(self.prefix))],
            storage=StorageType.FILE,
            max_age=self.max_age.total_seconds(),
            max_msg_size=self.max_event_bytes,
            max_msgs_per_subject=1,
            duplicate_window=self.duplicate_window.total_seconds(),
            num_replicas=self.replicas,
        )

    def config(self) -> StreamConfig:
        """The stream configuration we create."""
        return StreamConfig(
            name=self.name,
            subjects=[stream_subjects(self.prefix)],
            storage=StorageType.FILE,
            max_age=self.max_age.total_seconds(),
            max_msg_size=self.max_event_bytes,
            duplicate_window=self.duplicate_window.total_seconds(),
            num_replicas=self.replicas,
        )


async def provision(js: JetStreamContext, settings: StreamSettings) -> None:
    """Create the event stream and the snapshot stream, or check the existing ones.

    Raises:
        StreamMismatchError: a stream exists with other settings (it is left unchanged).
    """
    await _provision_one(js, settings.config())
    await _provision_one(js, settings.snapshot_config())


async def streams_ready(nc: NATS, settings: StreamSettings, *, create: bool) -> None:
    """Provision the streams, or with `create=False` only check that they exist.

    Raises:
        ConfigurationError: with `create=False`, a stream does not exist.
        BrokerConnectionError: the NATS user may not read (or create) a stream.
    """
    before = nc.last_error
    names = [settings.name, snapshot_stream(settings.name)]
    if not create:
        for wanted in (settings.config(), settings.snapshot_config()):
            await _check_exists(nc, wanted)
        return
    try:
        await provision(nc.jetstream(), settings)
    except nats.errors.TimeoutError as e:
        # A denied JetStream request is dropped by the server: it only times out.
        api = [f"$JS.API.STREAM.{op}.{n}" for op in ("INFO", "CREATE") for n in names]
        violation = denied(nc, before, *api)
        if violation is None:
            raise
        raise BrokerConnectionError(
            f"NATS refused to let the worker check or create stream {settings.name!r} "
            f"({violation}); give its NATS user permission to publish on "
            f"$JS.API.STREAM.INFO.{settings.name} and $JS.API.STREAM.CREATE.{settings.name} "
            "(and the same for the _STATE stream), or let an administrator create the "
            "streams and pass provision_stream=False; see docs/security.md"
        ) from e


async def restore(
    js: JetStreamContext, settings: StreamSettings, name: str, *, create: bool
) -> StreamState:
    """After a publish found no stream `name`: whether it exists, or was created again
    (with `create`, as `provision` would), or is missing."""
    try:
        await js.stream_info(name)
        return "exists"
    except nats.js.errors.NotFoundError:
        if not create:
            return "missing"
    wanted = settings.config() if name == settings.name else settings.snapshot_config()
    await _provision_one(js, wanted)
    return "created"


async def _check_exists(nc: NATS, wanted: StreamConfig) -> None:
    name = str(wanted.name)
    subject = f"$JS.API.STREAM.INFO.{name}"
    reading = nc.jetstream().stream_info(name)
    try:
        info = await permitted(nc, reading, subject, f"reading stream {name}")
    except nats.js.errors.NotFoundError:
        raise ConfigurationError(
            f"JetStream stream {name!r} does not exist, and the plugin was told not to "
            "create it (provision_stream=False): ask the administrator to create it (see "
            "docs/security.md), or start a worker that may create it first"
        ) from None
    _refuse_losses(info.config, losses(info.config, per_subject=wanted.max_msgs_per_subject))


async def _provision_one(js: JetStreamContext, wanted: StreamConfig) -> None:
    name = str(wanted.name)
    try:
        existing = (await js.stream_info(name)).config
    except nats.js.errors.NotFoundError:
        try:
            await js.add_stream(wanted)
            return
        except nats.js.errors.APIError as refused:
            existing = await _created_meanwhile(js, wanted, refused)
    _refuse_losses(existing, losses(existing, per_subject=wanted.max_msgs_per_subject))
    problems = _differences(existing, wanted)
    if problems:
        raise StreamMismatchError(
            f"JetStream stream {name!r} already exists with other settings: "
            + "; ".join(problems)
            + ". It was left unchanged: pass matching settings to the plugin, or update "
            f"or delete the stream yourself (`nats stream edit {name}` or `nats stream rm "
            f"{name}`, with {NATS_CLI}) if that is really meant."
        )


async def _created_meanwhile(
    js: JetStreamContext, wanted: StreamConfig, refused: nats.js.errors.APIError
) -> StreamConfig:
    """The stream another worker created first, or a clear error for a refused creation."""
    try:
        return (await js.stream_info(str(wanted.name))).config
    except nats.js.errors.NotFoundError:
        pass
    hint = ""
    if (wanted.num_replicas or 1) > 1:
        hint = (
            f" replicas={wanted.num_replicas} needs a JetStream cluster of at least "
            f"{wanted.num_replicas} servers (mistral_workflows.dev.NatsCluster runs one "
            "locally); use replicas=1 with a single server."
        )
    raise ConfigurationError(
        f"JetStream refused to create stream {wanted.name!r}: {refused.description} "
        f"(error {refused.err_code}).{hint}"
    ) from refused


def _refuse_losses(config: StreamConfig, found: list[str]) -> None:
    if found:
        name = config.name
        raise StreamMismatchError(
            f"JetStream stream {name!r} has settings that lose or refuse events: "
            + "; ".join(found)
            + f". It was left unchanged: delete it (`nats stream rm {name}`) so that the "
            "plugin creates it as it should be, or fix these settings (`nats stream edit "
            f"{name}`); the commands are those of {NATS_CLI}."
        )


def losses(config: StreamConfig, *, per_subject: int | None = -1) -> list[str]:
    """The settings of an existing stream that delete or refuse the events the plugin sends.

    Args:
        config: The stream's configuration, as the server reports it.
        per_subject: The messages per subject the plugin keeps on purpose (-1: all; the
            snapshot stream keeps one per task).
    """
    found = []
    retention = _value(config.retention)
    if retention not in (None, "limits"):
        found.append(
            f"retention={retention!r} deletes events once read (or at once when no consumer "
            "is interested), where the plugin needs 'limits'"
        )
    found += _count_limits(config, per_subject)
    flags = {
        "no_ack": "JetStream does not acknowledge events, so none is known to be stored",
        "sealed": "the stream refuses every event",
        "mirror": "a mirror refuses the events published to it",
        "subject_transform": "events are stored under other subjects, where nobody reads",
    }
    found += [
        f"{k}={getattr(config, k)!r}: {why}" for k, why in flags.items() if getattr(config, k)
    ]
    if _value(config.persist_mode) == "async":
        found.append(
            "persist_mode='async': events are acknowledged before they are written, so a "
            "server crash loses acknowledged events"
        )
    return found


def _count_limits(config: StreamConfig, per_subject: int | None) -> list[str]:
    """Limits on messages or bytes: each deletes unread events or refuses new ones."""
    refuses = _value(config.discard) == "new"
    effect = (
        "refuses new events once reached"
        if refuses
        else "deletes the oldest events once reached, read or not"
    )
    found = [
        f"{key}={value}: {effect}"
        for key, value in (("max_msgs", config.max_msgs), ("max_bytes", config.max_bytes))
        if value is not None and value > 0
    ]
    kept = config.max_msgs_per_subject
    if kept is not None and kept > 0:
        wanted = per_subject if per_subject is not None and per_subject > 0 else None
        if refuses and config.discard_new_per_subject:
            found.append(f"max_msgs_per_subject={kept} with discard_new_per_subject: {effect}")
        elif wanted is None or kept < wanted:
            found.append(f"max_msgs_per_subject={kept}: keeps only {kept} event(s) per task")
    return found


def _value(setting: object) -> object:
    """An enum setting as the server spells it ('limits', 'new'...)."""
    return getattr(setting, "value", setting)


def _differences(existing: StreamConfig, wanted: StreamConfig) -> list[str]:
    checks = [
        ("subjects", sorted(existing.subjects or []), sorted(wanted.subjects or [])),
        ("storage", existing.storage, wanted.storage),
        ("max_age", existing.max_age, wanted.max_age),
        ("max_msg_size", existing.max_msg_size, wanted.max_msg_size),
        ("duplicate_window", existing.duplicate_window, wanted.duplicate_window),
        ("replicas", existing.num_replicas, wanted.num_replicas),
        ("max_msgs_per_subject", existing.max_msgs_per_subject, wanted.max_msgs_per_subject),
    ]
    return [f"{name} is {have!r}, wanted {want!r}" for name, have, want in checks if have != want]
