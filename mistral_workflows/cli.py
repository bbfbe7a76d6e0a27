"""The `mistral-workflows` command: `dev` starts local servers, `events` prints the events
of an execution, a tree or a stream type, `tail` shows everything happening now."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import ssl
import sys
from collections.abc import Sequence
from dataclasses import asdict, fields
from typing import Any

from mistral_workflows.consumer import Gap, subscribe
from mistral_workflows.consumer._view import HumanView
from mistral_workflows.core import subjects
from mistral_workflows.core.errors import ConfigurationError, MistralWorkflowsError
from mistral_workflows.core.filter import SCOPES, EventFilter
from mistral_workflows.core.logfields import LOG_FORMATS, bind_log_fields, configure_logging

LOG_FORMAT_ENV = "MISTRAL_WORKFLOWS_LOG_FORMAT"

__all__ = ["main"]

# Without --follow, `events` stops once it has read what is stored (or, should the server
# not say so, once the stream has been quiet for this long).
_CATCH_UP_IDLE = 1.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mistral-workflows", description="Stream Temporal task events through NATS."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    dev = commands.add_parser("dev", help="run local NATS and Temporal servers until Ctrl-C")
    dev.add_argument("--data-dir", help="keep the servers' data here (default: temporary)")
    dev.add_argument("--nats-port", type=int, help="NATS port (default: a free one)")
    dev.add_argument("--temporal-port", type=int, help="Temporal port (default: a free one)")
    events = commands.add_parser("events", help="print the events of an execution, tree or type")
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
    tail = commands.add_parser("tail", help="everything happening now, across workflows")
    _reading_options(tail, default_format="human")
    _gateway_commands(commands)
    return parser


def _gateway_commands(commands: Any) -> None:
    gateway = commands.add_parser(
        "gateway", help="serve the events over HTTP/SSE (the official events API) and a live page"
    )
    gateway.add_argument("--nats-url", default="nats://127.0.0.1:4222", help="NATS URL")
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
    _connection_options(gateway)
    token = commands.add_parser("token", help="mint a bearer token for the gateway")
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
        return check_secret(_secret(args.secret_file, "--secret-file").encode())
    return secret_from_env()


def _run_gateway(args: argparse.Namespace) -> None:
    from mistral_workflows.gateway import GatewaySettings, serve

    settings = GatewaySettings(
        nats_url=args.nats_url,
        secret=_gateway_secret(args),
        stream_name=args.stream_name,
        subject_prefix=args.subject_prefix,
        keepalive=args.keepalive,
        nats_options=_nats_options(args),
        read_ahead_bytes=args.read_ahead_bytes,
        total_read_ahead_bytes=args.total_read_ahead_bytes,
        **({"cors_origins": tuple(args.cors_origins)} if args.cors_origins else {}),
    )
    serve(settings, host=args.host, port=args.port, log_format=args.log_format or "text")


def _print_token(args: argparse.Namespace) -> None:
    from mistral_workflows.gateway import mint_token

    secret = _gateway_secret(args)
    if secret is None:
        raise ConfigurationError(
            "no secret to sign with: give --secret-file or set MISTRAL_WORKFLOWS_GATEWAY_SECRET"
        )
    print(mint_token(secret, args.namespace, args.root_workflow_exec_id, args.ttl))


def _reading_options(parser: argparse.ArgumentParser, default_format: str) -> None:
    parser.add_argument("--nats", default="nats://127.0.0.1:4222", help="NATS URL")
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
    _connection_options(parser)


def _connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "NATS authentication", "secrets are read from files, so that they stay out of `ps`"
    )
    group.add_argument("--creds", metavar="FILE", help="a .creds file (`nsc generate creds`)")
    group.add_argument("--nkey-seed", metavar="FILE", help="a file holding an NKey user seed")
    group.add_argument("--user", help="user name (with --password-file)")
    group.add_argument("--password-file", metavar="FILE", help="a file holding the password")
    group.add_argument("--token-file", metavar="FILE", help="a file holding the token")
    group.add_argument(
        "--tls-ca", metavar="FILE", help="trust the CA certificate(s) in this PEM file"
    )
    group.add_argument(
        "--inbox-prefix",
        metavar="PREFIX",
        help="reply subjects under PREFIX instead of _INBOX (per-tenant permissions)",
    )


def _nats_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `nats.connect` options of the authentication flags, files checked and read.

    Raises:
        ConfigurationError: a file cannot be read or holds nothing usable.
    """
    options: dict[str, Any] = {}
    if args.creds:
        options["user_credentials"] = _readable(args.creds, "--creds")
    if args.nkey_seed:
        options["nkeys_seed"] = _readable(args.nkey_seed, "--nkey-seed")
    if args.password_file and not args.user:
        raise ConfigurationError("--password-file needs --user")
    if args.user:
        options["user"] = args.user
    if args.password_file:
        options["password"] = _secret(args.password_file, "--password-file")
    if args.token_file:
        options["token"] = _secret(args.token_file, "--token-file")
    if args.tls_ca:
        options["tls"] = _trusting(args.tls_ca)
    if args.inbox_prefix:
        options["inbox_prefix"] = args.inbox_prefix
    return options


# The value of a secret flag is never repeated: it may be the secret itself, given by mistake.
def _readable(path: str, flag: str) -> str:
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ConfigurationError(f"{flag} names no readable file")
    return path


def _secret(path: str, flag: str) -> str:
    try:
        with open(_readable(path, flag), encoding="utf-8") as file:
            secret = file.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigurationError(f"{flag}: cannot read the file ({type(e).__name__})") from None
    if not secret:
        raise ConfigurationError(f"{flag}: the file is empty")
    return secret


def _trusting(path: str) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=_readable(path, "--tls-ca"))
    except (OSError, ssl.SSLError) as e:
        raise ConfigurationError(
            f"--tls-ca: no CA certificate could be loaded from {path!r} ({e}); "
            "it should be a PEM file"
        ) from None


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
    view = HumanView(sys.stdout) if args.format == "human" else None
    async for event in subscribe(
        args.nats,
        **asdict(_filter(args)),
        from_now=tailing,
        until_caught_up=not follow,
        idle_timeout=None if follow else _CATCH_UP_IDLE,
        on_gap=_gap_notice,
        stream_name=args.stream_name,
        subject_prefix=args.subject_prefix,
        nats_options=_nats_options(args),
        **options,
    ):
        if view is not None:
            view.show(event)
        else:
            sys.stdout.write(event.model_dump_json() + "\n")
            sys.stdout.flush()


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
                data_dir=args.data_dir, nats_port=args.nats_port, temporal_port=args.temporal_port
            )
        elif args.command == "gateway":
            _run_gateway(args)
        elif args.command == "token":
            _print_token(args)
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
