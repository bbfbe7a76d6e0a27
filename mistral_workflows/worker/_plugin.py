"""The worker start-up hook: a temporalio plugin that makes workers stream events."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import orjson
from nats.aio.client import Client as NATS
from temporalio import activity
from temporalio.plugin import SimplePlugin
from temporalio.worker import Worker, WorkerConfig, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from mistral_workflows.core.connection import connect, display_url
from mistral_workflows.core.encoding import EXPECTED_STREAM, MSG_ID, encode_event
from mistral_workflows.core.encryption import Encryption
from mistral_workflows.core.errors import ConfigurationError
from mistral_workflows.core.publisher import ConnectionHooks, Publisher
from mistral_workflows.core.relay import Relay
from mistral_workflows.core.subjects import DEFAULT_PREFIX, DEFAULT_STREAM_NAME, validate_prefix
from mistral_workflows.core.urls import check_nats_urls
from mistral_workflows.interceptors import (
    PUBLISH_ACTIVITY,
    StreamingInterceptor,
    WorkflowSettings,
    publish_activity,
)
from mistral_workflows.worker._stream import StreamSettings, restore, streams_ready

__all__ = ["MistralWorkflowsPlugin"]

# Seconds a stopping worker waits, at most, for the events of workflow code still queued.
_RELAY_CLOSE_WAIT = 5.0


class MistralWorkflowsPlugin(SimplePlugin):
    """Streams the `Task` events of every activity of the workers it is installed on.

    Register it once on the client; workers built from that client inherit it:

        client = await Client.connect(
            "127.0.0.1:7233", plugins=[MistralWorkflowsPlugin(nats_url="nats://127.0.0.1:4222")]
        )

    When a worker starts, the plugin connects to NATS (a few bounded attempts, then a
    clear error), creates the JetStream stream if it is missing (an existing stream with
    other settings is an error and is left unchanged) and installs the interceptors.
    Every activity's events are acknowledged by JetStream before its result is returned.
    Replaying workflow histories does not need NATS.

    `Task` works in `def` activities too (Temporal runs them in a thread pool, and their
    events are published by the worker's event loop). A worker with such activities and
    no `activity_executor` gets a thread pool of `max_concurrent_activities` threads
    (100 by default) from the plugin, shut down with the worker.

    Args:
        nats_url: One NATS URL or a list of them.
        stream_name: The JetStream stream.
        subject_prefix: The first subject token(s); the stream captures `<prefix>.>`.
        max_event_bytes: The largest event, headers included (default 1 MiB).
        max_age: How long the stream keeps events.
        duplicate_window: How long JetStream drops re-sent events by message id.
        replicas: Stream replicas (3 on a JetStream cluster).
        persist_timeout: Seconds an activity waits at its end for its events to be stored
            before the attempt fails with `PublishError` (Temporal then retries it).
        fail_on_publish_error: False to only log events that could not be stored.
        connect_timeout: Seconds per connection attempt.
        connect_attempts: Connection attempts at worker start.
        nats_options: Further `nats.connect` options: user, password, token, tls,
            nkeys_seed (a file) or nkeys_seed_str, user_credentials (a .creds file),
            inbox_prefix... (see docs/security.md).
        provision_stream: False when an administrator creates the streams: the worker then
            only checks that they exist and never creates one, so its NATS user needs no
            permission to create streams.
        encryption: Encrypt task state before it leaves the worker (see `Encryption` and
            docs/security.md); consumers need the same keys.
        max_delay: The longest a task holds an update to fold it with later ones before
            handing it to the socket (a timedelta, or seconds), whether the activity yields
            to the event loop between updates or not; 0 sends one event per update.
    """

    def __init__(
        self,
        nats_url: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        stream_name: str = DEFAULT_STREAM_NAME,
        subject_prefix: str = DEFAULT_PREFIX,
        max_event_bytes: int = 1024 * 1024,
        max_age: timedelta = timedelta(days=7),
        duplicate_window: timedelta = timedelta(minutes=2),
        replicas: int = 1,
        persist_timeout: float = 30.0,
        fail_on_publish_error: bool = True,
        connect_timeout: float = 2.0,
        connect_attempts: int = 3,
        nats_options: dict[str, Any] | None = None,
        provision_stream: bool = True,
        encryption: Encryption | None = None,
        max_delay: timedelta | float = timedelta(milliseconds=25),
    ) -> None:
        check_nats_urls(nats_url)
        if persist_timeout <= 0 or connect_timeout <= 0 or connect_attempts < 1:
            raise ConfigurationError(
                "persist_timeout and connect_timeout must be positive, connect_attempts >= 1"
            )
        self.nats_url = nats_url
        self.stream = StreamSettings(
            name=stream_name,
            prefix=validate_prefix(subject_prefix),
            max_age=max_age,
            max_event_bytes=max_event_bytes,
            duplicate_window=duplicate_window,
            replicas=replicas,
        )
        self._max_delay = _seconds("max_delay", max_delay)
        self._provision = provision_stream
        self._persist_timeout = persist_timeout
        self._strict = fail_on_publish_error
        if encryption is not None and not isinstance(encryption, Encryption):
            raise ConfigurationError(
                f"encryption must be a mistral_workflows.Encryption, not {encryption!r}"
            )
        if encryption is not None and encryption.active is None:
            raise ConfigurationError(
                f"{encryption!r} has several keys: name the one that encrypts with active=..."
            )
        self._encryption = encryption
        self._connect = {
            "connect_timeout": connect_timeout,
            "attempts": connect_attempts,
            **(nats_options or {}),
        }
        self._publisher: Publisher | None = None
        self._executors: set[concurrent.futures.Executor] = set()
        self._relay: Relay | None = None
        self._users = 0
        self._lock = asyncio.Lock()
        self._connected_event = asyncio.Event()
        settings = WorkflowSettings(
            prefix=self.stream.prefix,
            stream_name=self.stream.name,
            limit=self.stream.max_event_bytes,
            timeout=timedelta(seconds=persist_timeout + 5),
        )
        super().__init__(
            "mistral_workflows.MistralWorkflowsPlugin",
            interceptors=[
                StreamingInterceptor(lambda: self._publisher, lambda: self._relay, settings)
            ],
            activities=[self._publish_activity()],
            workflow_runner=_with_passthrough,
        )

    @property
    def publisher(self) -> Publisher | None:
        """The open publisher while at least one worker runs, else None."""
        return self._publisher

    async def wait_connected(self) -> None:
        """Wait until a worker of this plugin has connected to NATS and set up the stream."""
        await self._connected_event.wait()

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        """Add the interceptors and the local activity; give a worker that has `def`
        activities and no `activity_executor` a thread pool for them."""
        config = super().configure_worker(config)
        activities = config.get("activities") or ()
        if config.get("activity_executor") is None and any(map(_runs_in_thread, activities)):
            threads = config.get("max_concurrent_activities") or _DEFAULT_ACTIVITY_SLOTS
            executor = concurrent.futures.ThreadPoolExecutor(
                threads, thread_name_prefix="mistral-workflows-activity"
            )
            self._executors.add(executor)
            config["activity_executor"] = executor
        return config

    async def run_worker(self, worker: Worker, next: Callable[[Worker], Awaitable[None]]) -> None:
        """Open the NATS connection (shared by this plugin's workers) around the worker.

        If the worker cannot start (NATS unreachable, credentials refused, a stream that
        does not fit), it is marked stopped before the error is raised, so that
        `worker.shutdown()` and leaving `async with Worker(...)` return instead of waiting
        for a run that never began.
        """
        try:
            async with self._connected():
                await next(worker)
        except BaseException:
            if not worker.is_running and not worker.is_shutdown:
                _mark_stopped_without_running(worker)
            raise
        finally:
            executor = worker.config(active_config=True).get("activity_executor")
            if executor in self._executors:
                assert executor is not None
                self._executors.discard(executor)
                executor.shutdown(wait=False)

    @asynccontextmanager
    async def _connected(self) -> AsyncIterator[Publisher]:
        async with self._lock:
            if self._publisher is None:
                self._publisher = await self._open()
                window = self.stream.duplicate_window.total_seconds()
                self._relay = Relay(self._publisher, give_up_after=window)
                self._connected_event.set()
            self._users += 1
            publisher = self._publisher
        try:
            yield publisher
        finally:
            async with self._lock:
                self._users -= 1
                if self._users == 0 and self._publisher is not None:
                    closing, self._publisher = self._publisher, None
                    relay, self._relay = self._relay, None
                    self._connected_event.clear()
                    if relay is not None:  # what workflows handed over goes out first
                        await relay.close(min(self._persist_timeout, _RELAY_CLOSE_WAIT))
                    await _close(closing.nc)

    async def _open(self) -> Publisher:
        hooks = ConnectionHooks(self._connect)
        nc = await connect(self.nats_url, **{**self._connect, **hooks.options()})
        try:
            await streams_ready(nc, self.stream, create=self._provision)
        except BaseException:
            await _close(nc)
            raise
        hooks.publisher = Publisher(
            nc,
            url=display_url(self.nats_url),
            stream_name=self.stream.name,
            prefix=self.stream.prefix,
            max_event_bytes=self.stream.max_event_bytes,
            persist_timeout=self._persist_timeout,
            strict=self._strict,
            encryption=self._encryption,
            max_delay=self._max_delay,
            restore=functools.partial(restore, nc.jetstream(), self.stream, create=self._provision),
        )
        return hooks.publisher

    def _publish_activity(self) -> Callable[..., Any]:
        """The local activity that publishes the events of workflow code.

        Workflow code encodes its events without the keys: with encryption, they are
        encrypted here, in the worker, before they are sent.
        """
        publish = publish_activity(lambda: self._relay)
        encryption = self._encryption
        if encryption is None:
            return publish

        @activity.defn(name=PUBLISH_ACTIVITY)
        async def publish_encrypted(
            subject: str,
            payload: str,
            headers: dict[str, str],
            hand_off: bool = False,
            execution: str = "",
        ) -> None:
            limit = self._publisher.limit if self._publisher else self.stream.max_event_bytes
            msg_id, stream = headers[MSG_ID], headers[EXPECTED_STREAM]
            what = "an event of workflow code"
            encoded, _ = encode_event(
                orjson.loads(payload), msg_id, stream, limit, what, encryption
            )
            await publish(subject, encoded.decode(), headers, hand_off, execution)

        return publish_encrypted


def _mark_stopped_without_running(worker: Worker) -> None:
    """Let `shutdown()` of a worker that never started return, as temporalio does itself.

    temporalio 1.35's `Worker.shutdown()`, which leaving `async with Worker(...)` calls,
    waits for `_shutdown_complete_event`, set only at the end of the worker's own run (or
    when that run's first check fails). A plugin that fails before calling `next` leaves
    it unset, and no public API sets it.

    Raises:
        RuntimeError: temporalio no longer has this attribute; the check is here so that
            an upgrade fails loudly (tests/worker/test_start_failure.py) instead of
            hanging again.
    """
    done = getattr(worker, "_shutdown_complete_event", None)
    if not isinstance(done, asyncio.Event):
        raise RuntimeError(
            "temporalio's Worker has no _shutdown_complete_event any more: "
            "MistralWorkflowsPlugin cannot mark a worker that failed to start as stopped, "
            "so Worker.shutdown() may wait for ever; update mistral-workflows or pin the "
            "temporalio version it was tested with"
        )
    done.set()


# temporalio's default of max_concurrent_activities.
_DEFAULT_ACTIVITY_SLOTS = 100


def _runs_in_thread(fn: object) -> bool:
    """Whether temporalio runs the activity `fn` in its executor (it is not async)."""
    call = getattr(fn, "__call__", None)  # noqa: B004
    return not (inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call))


def _seconds(name: str, value: object) -> float:
    """A duration given as a timedelta or as seconds, checked: finite and not negative."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 <= seconds < float("inf")
    ):
        raise ConfigurationError(
            f"{name} must be a timedelta or a number of seconds, 0 or more, not {value!r}; "
            f"e.g. {name}=timedelta(milliseconds=25), or 0"
        )
    return float(seconds)


def _with_passthrough(runner: WorkflowRunner | None) -> WorkflowRunner:
    """Let workflow code use our modules as they are (they only read workflow.info())."""
    if isinstance(runner, SandboxedWorkflowRunner):
        restrictions = runner.restrictions.with_passthrough_modules("mistral_workflows", "orjson")
        return dataclasses.replace(runner, restrictions=restrictions)
    return runner or SandboxedWorkflowRunner()


async def _close(nc: NATS) -> None:
    try:
        await asyncio.wait_for(nc.drain(), timeout=5)
    except Exception:
        await nc.close()
