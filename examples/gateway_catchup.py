"""Catch up on a workflow's history through the gateway's cacheable pages, then know where
its live stream starts.

Start a gateway (`mistral-workflows gateway --nats-url nats://127.0.0.1:4222`), run the
token-stream example, then:

    python -m examples.gateway_catchup --gateway http://127.0.0.1:8000 --exec <workflow id>

Complete pages never change: a browser or a CDN keeps them, and the gateway reads each
from JetStream once, however many clients ask for it.
"""

from __future__ import annotations

import argparse
import json
import urllib.parse
import urllib.request
from typing import Any


def catch_up(gateway_url: str, workflow_id: str, token: str = "dev") -> tuple[list[Any], str]:
    """Every stored event of the workflow, page by page; and the sequence to stream from."""
    events: list[Any] = []
    base = f"{gateway_url}/v1/workflows/executions/{urllib.parse.quote(workflow_id)}/pages"
    cursor = None
    while True:
        query = "" if cursor is None else "?" + urllib.parse.urlencode({"cursor": cursor})
        request = urllib.request.Request(base + query, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request) as response:
            page = json.load(response)
        events += page["events"]
        cursor = page["next_cursor"]
        if not page["complete"]:
            # The last page is still growing: follow the stream from here on, e.g.
            # /v1/workflows/executions/<id>/stream?start_seq=<cursor>
            return events, cursor or "0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default="http://127.0.0.1:8000", help="gateway URL")
    parser.add_argument("--exec", required=True, help="workflow id")
    parser.add_argument("--token", default="dev", help="bearer token (mistral-workflows token)")
    args = parser.parse_args()
    events, start = catch_up(args.gateway, args.exec, args.token)
    for event in events:
        print(json.dumps(event))
    print(f"{len(events)} events; the live stream starts at start_seq={start}")


if __name__ == "__main__":
    main()
