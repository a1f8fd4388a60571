"""``neruba local run`` (what ``make run`` does): start the stack, seed the demo, print the banner."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="neruba local run")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("NERUBA_LOCAL_PORT", "8080")))
    parser.add_argument(
        "--moto-port", type=int, default=int(os.environ.get("NERUBA_LOCAL_MOTO_PORT", "5055"))
    )
    parser.add_argument("--template", default="template.yaml")
    parser.add_argument("--no-seed", action="store_true")
    parser.add_argument("--no-schedules", action="store_true")
    args = parser.parse_args(argv)

    from neruba_tools.local.stack import LocalStack, PortInUseError

    root = Path(args.template).resolve().parent
    stack = LocalStack(
        Path(args.template).name, root, args.host, args.port, args.moto_port, schedules=not args.no_schedules
    )
    try:
        stack.start()
    except PortInUseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    print(f"Base URL: {stack.base_url}")
    if not args.no_seed:
        from neruba_tools.local.seed import seed_demo

        demo = seed_demo()
        print(f"API key: {demo.api_key}")
        print(f"Demo customer: {demo.customer_id}")
        print(f"Demo meter: {demo.meter_code}")
        print(f"Demo plan: {demo.plan_code} (subscription {demo.subscription_id})")
        event = {
            "transaction_id": "demo-1",
            "customer_id": demo.customer_id,
            "code": demo.meter_code,
            "properties": {"value": 1},
        }
        body = json.dumps({"events": [event]}, separators=(",", ":"))
        print("Send an event:")
        print(
            f"  curl -s -X POST {stack.base_url}/v1/events -H 'Authorization: Bearer {demo.api_key}' "
            f"-H 'Content-Type: application/json' -d '{body}'"
        )
        print("Read it back:")
        print(
            f"  curl -s '{stack.base_url}/v1/events/demo-1?customer_id={demo.customer_id}' "
            f"-H 'Authorization: Bearer {demo.api_key}'"
        )
    print(f"Docs: {stack.base_url}/docs")
    print(f"Moto endpoint: {stack.moto_url} (AWS_ENDPOINT_URL for the neruba CLI and the AWS CLI)")
    for name in stack.schedules:
        print(f"Schedule {name}: fire now with curl -s -X POST {stack.base_url}/_local/schedules/{name}/fire")
    print("Ctrl-C stops everything.", flush=True)
    stopping.wait()
    stack.stop()
    print("Stopped.", flush=True)
    return 0
