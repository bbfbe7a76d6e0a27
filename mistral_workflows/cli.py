"""The `mistral-workflows` command: `dev` starts local servers, `events` prints the events
of an execution, a tree or a stream type, `tail` shows everything happening now."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from mistral_workflows.consumer import Gap, subscribe
from mistral_workflows.consumer._view import HumanView
from mistral_workflows.core.errors import MistralWorkflowsError

__all__ = ["main"]

# Without --follow, `events` stops once the stream has been quiet for this long.
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
    return parser


def _reading_options(parser: argparse.ArgumentParser, default_format: str) -> None:
    parser.add_argument("--nats", default="nats://127.0.0.1:4222", help="NATS URL")
    parser.add_argument("--workflow-name", help="workflow type name")
    parser.add_argument("--namespace", help="Temporal namespace")
    parser.add_argument("--stream", help="stream type, e.g. token-stream")
    parser.add_argument("--scope", choices=["workflow", "activity"], help="workflow or activity")
    parser.add_argument("--activity", dest="activity_name", help="activity type name")
    parser.add_argument(
        "--type", dest="event_types", action="append", help="event type (repeatable)"
    )
    parser.add_argument(
        "--format",
        choices=["json", "human"],
        default=default_format,
        help="JSON lines (one envelope per line) or a live human view",
    )
    parser.add_argument("--stream-name", default="WORKFLOW_EVENTS", help="JetStream stream")
    parser.add_argument("--subject-prefix", default="workflows", help="subject prefix")


def _gap_notice(gap: Gap) -> None:
    print(f"mistral-workflows: notice: {gap}", file=sys.stderr, flush=True)


async def _print_events(args: argparse.Namespace) -> None:
    tailing = args.command == "tail"
    follow = tailing or args.follow or args.until_complete
    filters = (
        {}
        if tailing
        else {
            "workflow_exec_id": args.workflow_exec_id,
            "root_workflow_exec_id": args.root_workflow_exec_id,
            "parent_workflow_exec_id": args.parent_workflow_exec_id,
            "start_seq": args.start_seq,
            "late_join": args.late_join,
            "until_complete": args.until_complete,
        }
    )
    view = HumanView(sys.stdout) if args.format == "human" else None
    async for event in subscribe(
        args.nats,
        workflow_name=args.workflow_name,
        namespace=args.namespace,
        stream=args.stream,
        scope=args.scope,
        activity_name=args.activity_name,
        event_types=args.event_types,
        from_now=tailing,
        idle_timeout=None if follow else _CATCH_UP_IDLE,
        on_gap=_gap_notice,
        stream_name=args.stream_name,
        subject_prefix=args.subject_prefix,
        **filters,
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
        if args.command == "dev":
            from mistral_workflows.dev import serve

            serve(
                data_dir=args.data_dir, nats_port=args.nats_port, temporal_port=args.temporal_port
            )
        else:
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
