"""`subscribe`: typed events of one execution, a workflow tree or a stream type, in order."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from pydantic import ValidationError

from mistral_workflows.consumer._consumers import last_sequence
from mistral_workflows.consumer._gap import Gap, log_gap
from mistral_workflows.consumer._reader import Reader
from mistral_workflows.consumer._snapshots import Snapshots, backfill, read_snapshots
from mistral_workflows.core import subjects
from mistral_workflows.core.connection import connect
from mistral_workflows.core.encoding import trace_context
from mistral_workflows.core.encryption import Encryption
from mistral_workflows.core.errors import ConfigurationError
from mistral_workflows.core.events import (
    TERMINAL_WORKFLOW_EVENT_TYPES,
    EventType,
    StreamEvent,
)
from mistral_workflows.core.filter import EventFilter

__all__ = ["Gap", "subscribe", "subscribe_sync"]

# JetStream refuses names with ".", "*", ">", spaces or path separators.
_STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")

log = logging.getLogger("mistral_workflows")

_ENDS_FOR_GOOD = TERMINAL_WORKFLOW_EVENT_TYPES - {EventType.WORKFLOW_EXECUTION_CONTINUED_AS_NEW}
# Streams whose filter already reads the lifecycle events that end a workflow.
_LIFECYCLE_TOO = (None, subjects.LIFECYCLE_STREAM)


async def subscribe(
    nats: str | NATS,
    *,
    workflow_exec_id: str | None = None,
    root_workflow_exec_id: str | None = None,
    parent_workflow_exec_id: str | None = None,
    workflow_name: str | None = None,
    namespace: str | None = None,
    stream: str | None = None,
    scope: str | None = None,
    activity_name: str | None = None,
    activity_id: str | None = None,
    event_types: Iterable[str] | None = None,
    start_seq: int | None = None,
    from_now: bool = False,
    late_join: bool = False,
    until_complete: bool = False,
    idle_timeout: float | None = None,
    until_caught_up: bool = False,
    on_gap: Callable[[Gap], None] = log_gap,
    stream_name: str = subjects.DEFAULT_STREAM_NAME,
    subject_prefix: str = subjects.DEFAULT_PREFIX,
    nats_options: Mapping[str, Any] | None = None,
    encryption: Encryption | None = None,
    read_ahead_bytes: int | None = None,
) -> AsyncGenerator[StreamEvent, None]:
    """Yield the events that match every given filter, oldest first.

    Filters on ids, names and the stream type are applied by the NATS server (they are
    part of each event's subject); `event_types` is applied here. Each event's
    `broker_sequence` is its JetStream sequence: pass the last one plus one as
    `start_seq` to resume where you left off.

    Args:
        nats: A NATS URL, or a connected `nats.aio.client.Client` (left open).
        workflow_exec_id: Only events of this workflow execution.
        root_workflow_exec_id: Only events of the workflow tree under this root.
        parent_workflow_exec_id: Only events of the children of this workflow.
        workflow_name: Only events of workflows of this type.
        namespace: Only events of this Temporal namespace.
        stream: Only events of this stream type (a `Task` type).
        scope: "workflow" for events of workflow code only, "activity" for activities only.
        activity_name: Only events of activities of this type.
        activity_id: Only events of the activity with this id (all its attempts).
        event_types: Only events of these types, e.g. {"CUSTOM_TASK_IN_PROGRESS"}.
        start_seq: The first broker sequence to deliver (inclusive); default: the oldest.
        from_now: Skip what is stored and deliver only events published from now on.
        late_join: Start with the latest snapshot of each matching task (marked with
            `metadata["snapshot"]`, without a broker sequence), then only newer events:
            for consumers that join after tasks began, or after old events expired.
        until_complete: Stop after the workflow (`workflow_exec_id`, else the root) ends.
        idle_timeout: Stop after this many seconds without a matching event.
        until_caught_up: Stop once every matching event stored so far has been read (the
            server's count of pending messages reached 0), without waiting for silence.
        on_gap: Called with a `Gap` (default: log a warning) when `start_seq` is older
            than the oldest event the stream still holds (reading then starts at the oldest
            one), or when the stream is not the one the position came from: it was deleted
            and created again, or its server restarted on an empty store, so `start_seq`
            is past its end, or it vanished while being read (`Gap.recreated`; reading
            then starts at the new stream's first event).
        stream_name: The JetStream stream, named explicitly: it is never looked up.
        subject_prefix: The subject prefix the workers use.
        nats_options: Further `nats.connect` options when `nats` is a URL: user, password,
            token, tls, nkeys_seed (a file) or nkeys_seed_str, user_credentials (a .creds
            file), inbox_prefix... (see docs/security.md).
        encryption: Decrypt the task state of events encrypted by the workers (the same
            keys); without it, encrypted state is yielded as it is stored.
        read_ahead_bytes: Bound, in bytes, each request for events read ahead of the
            caller (a larger event comes alone); default: 256 events, whatever their size.

    Raises:
        ConfigurationError: a filter or option is invalid.
        DecryptionError: with `encryption`, an event's state was encrypted with a key id
            it does not hold, or with other key bytes of the same id.
        BrokerConnectionError: the NATS server cannot be reached, refuses the credentials,
            or denies a permission reading needs (e.g. another tenant's namespace).
    """
    wanted = EventFilter(
        workflow_exec_id=workflow_exec_id,
        root_workflow_exec_id=root_workflow_exec_id,
        parent_workflow_exec_id=parent_workflow_exec_id,
        workflow_name=workflow_name,
        activity_name=activity_name,
        activity_id=activity_id,
        stream=stream,
        event_types=event_types,
        namespace=namespace,
        scope=scope,
    )
    target = wanted.workflow_exec_id or wanted.root_workflow_exec_id
    if until_complete and target is None:
        raise ConfigurationError(
            "until_complete needs workflow_exec_id or root_workflow_exec_id: it stops when "
            "that workflow ends"
        )
    if sum((from_now, late_join, start_seq is not None)) > 1:
        raise ConfigurationError("give at most one of start_seq, from_now and late_join")
    if nats_options and not isinstance(nats, str):
        raise ConfigurationError(
            "nats_options apply when subscribe connects by URL; a connected client already "
            "has its options"
        )
    if read_ahead_bytes is not None and read_ahead_bytes < 1:
        raise ConfigurationError(f"read_ahead_bytes must be >= 1, not {read_ahead_bytes!r}")
    if start_seq is not None and (type(start_seq) is not int or start_seq < 1):
        raise ConfigurationError(f"start_seq must be an integer >= 1, not {start_seq!r}")
    if not isinstance(stream_name, str) or not _STREAM_NAME.fullmatch(stream_name):
        raise ConfigurationError(
            f"stream_name must be a JetStream stream name (letters, digits, '_' and '-'), "
            f"not {stream_name!r}; the default is {subjects.DEFAULT_STREAM_NAME!r}"
        )
    prefix = subjects.validate_prefix(subject_prefix)
    filters = [wanted.subject(prefix)]
    if until_complete and (wanted.stream not in _LIFECYCLE_TOO or wanted.scope == "activity"):
        # The end of the workflow is a lifecycle event: read those too, then drop them.
        filters.append(_lifecycle(wanted).subject(prefix))
    opened = encryption.decrypt_event if encryption is not None else _as_stored
    async with _connection(nats, nats_options or {}) as nc:
        snapshots = Snapshots([])
        if late_join:
            # The end of the stream first: whatever is stored later is read in full.
            end = await last_sequence(nc, stream_name, filters[0]) + 1
            snapshots = await read_snapshots(nc, stream_name, prefix, wanted)
            for snapshot in snapshots.events:
                if wanted.matches(snapshot):
                    yield opened(snapshot)
            start_seq = snapshots.resume_seq(default=end)
        reader = Reader(
            nc,
            stream_name,
            filters,
            start_seq,
            new_only=from_now,
            on_gap=on_gap,
            max_bytes=read_ahead_bytes,
        )
        try:
            # Inside the try: a reader cancelled while it opens still deletes its consumer.
            await reader.open()
            first = reader.first_seq
            if start_seq is not None and first is not None and first > start_seq:
                on_gap(Gap(start_seq, first))
            while (
                not (until_caught_up and reader.caught_up)
                and (msg := await reader.next(idle_timeout)) is not None
            ):
                event = _decode(msg)
                if event is None or snapshots.covers(event):
                    continue
                if late_join and _began_unseen(event, snapshots):
                    # A task that began before we joined, whose snapshot came too late.
                    for missed in await backfill(nc, stream_name, prefix, msg.subject, event):
                        snapshots.add(missed)
                        if wanted.matches(missed):
                            yield opened(missed)
                    if snapshots.covers(event):
                        continue  # The snapshot fetched just now is already past it.
                if wanted.matches(event):
                    yield opened(event)
                if until_complete and _ends(event, target):
                    return
        finally:
            await reader.close()


def _as_stored(event: StreamEvent) -> StreamEvent:
    return event


def _began_unseen(event: StreamEvent, snapshots: Snapshots) -> bool:
    seq = getattr(getattr(event.data, "attributes", None), "task_sequence", None)
    if seq is None or snapshots.knows(event):
        return False
    if seq == 0:
        snapshots.add(event)  # Its start is here: nothing to fetch, now or later.
        return False
    return True


def subscribe_sync(nats: str, **filters: Any) -> Iterator[StreamEvent]:
    """`subscribe` for scripts without asyncio: a plain iterator over the same events.

    Takes the same keyword arguments as `subscribe`; `nats` must be a URL here.

    Raises:
        RuntimeError: called from inside a running event loop (use `subscribe` there).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("subscribe_sync cannot run inside an event loop; use subscribe")
    loop = asyncio.new_event_loop()
    events = subscribe(nats, **filters)
    try:
        while True:
            try:
                yield loop.run_until_complete(anext(events))
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(events.aclose())
        loop.close()


def _lifecycle(wanted: EventFilter) -> EventFilter:
    """The lifecycle events of the executions `wanted` names, whatever else it asks for."""
    return replace(
        wanted,
        stream=subjects.LIFECYCLE_STREAM,
        scope="workflow",
        activity_name=None,
        activity_id=None,
        event_types=None,
    )


def _ends(event: StreamEvent, target: str | None) -> bool:
    data = event.data
    return data.event_type in _ENDS_FOR_GOOD and data.workflow_exec_id == target


def _decode(msg: Msg) -> StreamEvent | None:
    seq = msg.metadata.sequence.stream
    try:
        event = StreamEvent.model_validate(orjson.loads(msg.data))
    except (orjson.JSONDecodeError, ValidationError) as e:
        # Not ours (someone else published under the prefix): say so, keep going.
        log.warning("mistral_workflows: skipping message #%d on %s: %s", seq, msg.subject, e)
        return None
    event.broker_sequence = seq
    event.trace_context = trace_context(msg.headers)
    return event


@asynccontextmanager
async def _connection(nats: str | NATS, options: Mapping[str, Any]) -> AsyncIterator[NATS]:
    if not isinstance(nats, str):
        yield nats
        return
    nc = await connect(nats, **{"name": "mistral-workflows-consumer", **options})
    try:
        yield nc
    finally:
        await nc.close()
