"""Read a workflow's token stream through the HTTP gateway with the official Mistral client.

With local servers (`mistral-workflows dev`) and the example worker
(`python -m examples.worker`) running, start a gateway and a chat workflow, then read it:

    mistral-workflows gateway --nats-url nats://127.0.0.1:4222
    python -m examples.start chat --id chat-1 --no-wait
    python -m examples.gateway_client --gateway http://127.0.0.1:8000 --exec chat-1

Code written for Mistral Workflows' events API only needs `server_url` changed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from mistralai.client import Mistral


async def print_reply(gateway_url: str, workflow_id: str, token: str = "dev") -> str:
    """Print the tokens of the workflow's token-stream task as they arrive; return the text."""
    async with Mistral(api_key=token, server_url=gateway_url) as client:
        stream = await client.workflows.events.get_stream_events_async(
            workflow_exec_id=workflow_id, stream="token-stream"
        )
        async for message in stream:
            if message.event == "error":
                raise RuntimeError(f"the gateway stopped the stream: {message.data.reason}")
            event = message.data.data
            if event.event_type == "CUSTOM_TASK_IN_PROGRESS":
                for op in event.attributes.payload.value:
                    if op.op == "add" and op.path.startswith("/tokens/"):
                        sys.stdout.write(op.value)
                        sys.stdout.flush()
            elif event.event_type == "CUSTOM_TASK_COMPLETED":
                print()
                await stream.close()
                return "".join(event.attributes.payload.value["tokens"])
    raise RuntimeError("the stream ended before the task did")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default="http://127.0.0.1:8000", help="gateway URL")
    parser.add_argument("--exec", required=True, help="workflow id")
    parser.add_argument("--token", default="dev", help="bearer token (mistral-workflows token)")
    args = parser.parse_args()
    asyncio.run(print_reply(args.gateway, args.exec, args.token))


if __name__ == "__main__":
    main()
