"""The `mistral-workflows` command: `dev` starts local servers, `events` prints the events
of an execution, a tree or a stream type, `tail` shows everything happening now."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, fields
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS

from mistral_workflows import __version__
from mistral_workflows._cli_nats import (
    connection_options,
    nats_options,
    nats_servers,
    read_secret,
    url_option,
)
from mistral_workflows._cli_schema import add_schema_command, run_schema
from mistral_workflows.consumer import Gap, subscribe
from mistral_workflows.consumer._view import HumanView
from mistral_workflows.core import subjects
from mistral_workflows.core.connection import connect, display_url, permitted
from mistral_workflows.core.errors import (
    BrokerConnectionError,
    ConfigurationError,
    MistralWorkflowsError,
)
from mistral_workflows.core.filter import SCOPES, EventFilter
from mistral_workflows.core.logfields import LOG_FORMATS, bind_log_fields, configure_logging

LOG_FORMAT_ENV = "MISTRAL_WORKFLOWS_LOG_FORMAT"

__all__ = ["main"]

# Without --follow, `events` stops once it has read what is stored (or, should the server
# not say so, once the stream has been quiet for this long).
_CATCH_UP_IDLE = 1.0


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (None, off)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, argparse.SUPPRESS) or "default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mistral-workflows",
        description="Stream Temporal task events through NATS.",
        epilog="Environment: NATS_URL (the NATS server when --nats-url is not given); "
        "MISTRAL_WORKFLOWS_GATEWAY_SECRET (the gateway's token secret).",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    dev = commands.add_parser(
        "dev",
        help="run local NATS and Temporal servers until Ctrl-C",
        description="Run a NATS server (JetStream on) and a Temporal dev server (with its "
        "web UI) on 127.0.0.1 until Ctrl-C. The standard ports (NATS 4222, Temporal 7233, "
        "UI 8233) are used when free, so the other commands need no flags; otherwise free "
        "ports are picked and the `export` lines to paste are printed.",
        formatter_class=_Formatter,
    )
    dev.add_argument("--data-dir", help="keep the servers' data here (default: temporary)")
    dev.add_argument("--nats-port", type=int, help="NATS port (default: 4222 if free)")
    dev.add_argument("--temporal-port", type=int, help="Temporal port (default: 7233 if free)")
    dev.add_argument("--ui-port", type=int, help="Temporal web UI port (default: 8233 if free)")
    events = commands.add_parser(
        "events",
        help="print the events of an execution, tree or type",
        description="Print the stored events that match the filters (JSON lines by "
        "default), then exit; --follow keeps waiting for new ones.",
        formatter_class=_Formatter,
    )
    _reading_options(events, default_format="json")
    events.add_argument("--exec", dest="workflow_exec_id", help="workflow execution id")
    events.add_argument("--root", dest="root_workflow_exec_id", help="root execution id")
    events.add_argument("--parent", dest="parent_workflow_exec_id", help="parent execution id")
    events.add_argument("--from-seq", dest="start_seq", type=int, help="first broker sequence")
    events.add_argument(
        "--late-join",
        action="store_true",
        help="start from each task's latest snapshot, then newer events",
    )
    events.add_argument("--follow", action="store_true", help="keep waiting for new events")
    events.add_argument("--until-complete", action="store_true", help="stop when the workflow ends")
    tail = commands.add_parser(
        "tail", help="everything happening now, across workflows", formatter_class=_Formatter
    )
    _reading_options(tail, default_format="human")
    _gateway_commands(commands)
    add_schema_command(commands, _Formatter)
    return parser


def _gateway_commands(commands: Any) -> None:
    gateway = commands.add_parser(
        "gateway",
        help="serve the events over HTTP/SSE (the official events API) and a live page",
        formatter_class=_Formatter,
    )
    url_option(gateway, several=False)
    gateway.add_argument("--host", default="127.0.0.1", help="address to listen on")
    gateway.add_argument("--port", type=int, default=8000, help="port to listen on")
    gateway.add_argument("--keepalive", type=float, default=15.0, help="seconds between pings")
    gateway.add_argument(
        "--read-ahead-bytes", type=int, default=1024 * 1024, help="bytes read ahead per client"
    )
    gateway.add_argument(
        "--total-read-ahead-bytes",
        type=int,
        default=64 * 1024 * 1024,
        help="bytes read ahead for all clients together",
    )
    gateway.add_argument(
        "--workers", type=int, default=1, help="gateway processes sharing the port (SO_REUSEPORT)"
    )
    gateway.add_argument(
        "--reuse-port",
        action="store_true",
        help="open the port with SO_REUSEPORT, so that other gateway processes share it",
    )
    gateway.add_argument(
        "--cors-origin",
        dest="cors_origins",
        action="append",
        metavar="ORIGIN",
        help="let web pages of this origin (https://host[:port], or *) read the gateway; "
        "repeatable (default: the MISTRAL_WORKFLOWS_GATEWAY_CORS_ORIGINS variable)",
    )
    _log_option(gateway)
    _stream_options(gateway)
    _secret_option(gateway)
    connection_options(gateway)
    token = commands.add_parser(
        "token", help="mint a bearer token for the gateway", formatter_class=_Formatter
    )
    token.add_argument("--namespace", required=True, help="the Temporal namespace it reads")
    token.add_argument(
        "--root-workflow-exec-id", help="only this workflow tree (e.g. for a browser)"
    )
    token.add_argument("--ttl", type=float, default=3600, help="lifetime in seconds")
    _secret_option(token)


def _log_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=os.environ.get(LOG_FORMAT_ENV) or None,
        help=f"log lines as text or as JSON objects (default: the {LOG_FORMAT_ENV} "
        "variable, else text)",
    )


def _stream_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stream-name", default=subjects.DEFAULT_STREAM_NAME, help="JetStream stream"
    )
    parser.add_argument("--subject-prefix", default=subjects.DEFAULT_PREFIX, help="subject prefix")


def _secret_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--secret-file",
        metavar="FILE",
        help="a file holding the token signing secret (default: the "
        "MISTRAL_WORKFLOWS_GATEWAY_SECRET variable; none: development mode)",
    )


def _gateway_secret(args: argparse.Namespace) -> bytes | None:
    from mistral_workflows.gateway import check_secret, secret_from_env

    if args.secret_file:
        return check_secret(read_secret(args.secret_file, "--secret-file").encode())
    return secret_from_env()


def _run_gateway(args: argparse.Namespace) -> None:
    from mistral_workflows.gateway import GatewaySettings, serve

    servers = nats_servers(args)
    if not isinstance(servers, str):
        raise ConfigurationError("the gateway connects to one NATS URL: give only one")
    settings = GatewaySettings(
        nats_url=servers,
        secret=_gateway_secret(args),
        stream_name=args.stream_name,
        subject_prefix=args.subject_prefix,
        keepalive=args.keepalive,
        nats_options=nats_options(args),
        read_ahead_bytes=args.read_ahead_bytes,
        total_read_ahead_bytes=args.total_read_ahead_bytes,
        **({"cors_origins": tuple(args.cors_origins)} if args.cors_origins else {}),
    )
    serve(
        settings,
        host=args.host,
        port=args.port,
        workers=args.workers,
        reuse_port=args.reuse_port,
        log_format=args.log_format or "text",
    )


def _print_token(args: argparse.Namespace) -> None:
    from mistral_workflows.gateway import mint_token

    secret = _gateway_secret(args)
    if secret is None:
        raise ConfigurationError(
            "no secret to sign with: give --secret-file or set MISTRAL_WORKFLOWS_GATEWAY_SECRET"
        )
    print(mint_token(secret, args.namespace, args.root_workflow_exec_id, args.ttl))


def _reading_options(parser: argparse.ArgumentParser, default_format: str) -> None:
    url_option(parser)
    parser.add_argument("--workflow-name", help="workflow type name")
    parser.add_argument("--namespace", help="Temporal namespace")
    parser.add_argument("--stream", help="stream type, e.g. token-stream")
    parser.add_argument("--scope", choices=SCOPES, help="workflow or activity")
    parser.add_argument("--activity", dest="activity_name", help="activity type name")
    parser.add_argument("--activity-id", dest="activity_id", help="one activity's id")
    parser.add_argument(
        "--type", dest="event_types", action="append", help="event type (repeatable)"
    )
    parser.add_argument(
        "--format",
        choices=["json", "human"],
        default=default_format,
        help="JSON lines (one envelope per line) or a live human view",
    )
    _log_option(parser)
    _stream_options(parser)
    connection_options(parser)


def _log_ids(args: argparse.Namespace) -> dict[str, Any]:
    """The ids the command reads, as fields of its log lines."""
    names = ["workflow_exec_id", "root_workflow_exec_id", "parent_workflow_exec_id"]
    return {name: getattr(args, name, None) for name in [*names, "namespace", "activity_id"]}


def _gap_notice(gap: Gap) -> None:
    print(f"mistral-workflows: notice: {gap}", file=sys.stderr, flush=True)


def _filter(args: argparse.Namespace) -> EventFilter:
    """The filter of the flags, whose destinations are its field names (`tail` has no id
    flags: those are None)."""
    return EventFilter(
        **{spec.name: getattr(args, spec.name, None) for spec in fields(EventFilter)}
    )


async def _print_events(args: argparse.Namespace) -> None:
    tailing = args.command == "tail"
    follow = tailing or args.follow or args.until_complete
    options = (
        {}
        if tailing
        else {
            "start_seq": args.start_seq,
            "late_join": args.late_join,
            "until_complete": args.until_complete,
        }
    )
    event_filter = _filter(args)  # a bad filter is refused before connecting
    nc = await connect(nats_servers(args), name="mistral-workflows-consumer", **nats_options(args))
    try:
        if not follow:
            await _check_stream_exists(nc, args.stream_name)
        view = HumanView(sys.stdout) if args.format == "human" else None
        async for event in subscribe(
            nc,
            **asdict(event_filter),
            from_now=tailing,
            until_caught_up=not follow,
            idle_timeout=None if follow else _CATCH_UP_IDLE,
            on_gap=_gap_notice,
            stream_name=args.stream_name,
            subject_prefix=args.subject_prefix,
            **options,
        ):
            if view is not None:
                view.show(event)
            else:
                sys.stdout.write(event.model_dump_json() + "\n")
                sys.stdout.flush()
    finally:
        await nc.close()


async def _check_stream_exists(nc: NATS, stream_name: str) -> None:
    """Refuse a stream that does not exist, when reading what is stored: there is nothing
    to read, and the name is most likely a typo.

    A NATS user not allowed to ask about streams (a tenant's reader) skips the check.
    """
    js = nc.jetstream()
    asking = js.stream_info(stream_name)
    try:
        await permitted(nc, asking, f"$JS.API.STREAM.INFO.{stream_name}", "reading stream info")
    except nats.js.errors.NotFoundError:
        where = display_url(nc.connected_url.geturl()) if nc.connected_url else "NATS"
        hint = (
            "no worker with the plugin has used this server yet: is it the right one "
            "(--nats-url, NATS_URL)?"
            if stream_name == subjects.DEFAULT_STREAM_NAME
            else f"check --stream-name (the default is {subjects.DEFAULT_STREAM_NAME})"
        )
        raise ConfigurationError(
            f"JetStream stream {stream_name!r} does not exist on {where}: {hint} Add "
            "--follow to wait for a worker to create it."
        ) from None
    except (BrokerConnectionError, nats.errors.Error, TimeoutError):
        return


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if getattr(args, "log_format", None) not in (None, *LOG_FORMATS):
            raise ConfigurationError(
                f"{LOG_FORMAT_ENV} must be one of {', '.join(LOG_FORMATS)}, not {args.log_format!r}"
            )
        if args.command == "dev":
            from mistral_workflows.dev import serve

            serve(
                data_dir=args.data_dir,
                nats_port=args.nats_port,
                temporal_port=args.temporal_port,
                ui_port=args.ui_port,
            )
        elif args.command == "gateway":
            _run_gateway(args)
        elif args.command == "token":
            _print_token(args)
        elif args.command == "schema":
            run_schema(args)
        else:
            if args.log_format is not None:
                configure_logging(args.log_format, logging.WARNING)
            with bind_log_fields(**_log_ids(args)):
                asyncio.run(_print_events(args))
    except KeyboardInterrupt:
        return 130
    except MistralWorkflowsError as e:
        print(f"mistral-workflows: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
