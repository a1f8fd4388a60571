"""``neruba local run`` (what ``make run`` calls): start the local stack, seed the demo, print the banner,
run until Ctrl-C or SIGTERM.

Scripts parse the banner's first lines: ``Base URL: ...``, ``API key: ...``, ``Demo customer: ...`` and
``Demo meter: ...``.

Example:
    $ neruba local run --port 8080 --moto-port 5055
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

from neruba_tools.local.intrinsics import REGION


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neruba local run", description="Run the whole stack on localhost.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("NERUBA_LOCAL_PORT", "8080")),
        help="API port (env NERUBA_LOCAL_PORT, default 8080; 0 = any free port)",
    )  # fmt: skip
    parser.add_argument(
        "--moto-port", type=int, default=int(os.environ.get("NERUBA_LOCAL_MOTO_PORT", "5055")),
        help="moto (AWS) port (env NERUBA_LOCAL_MOTO_PORT, default 5055; 0 = any free port)",
    )  # fmt: skip
    parser.add_argument(
        "--stripe-port", type=int, default=int(os.environ.get("NERUBA_LOCAL_STRIPE_PORT", "0")),
        help="local Stripe API port (env NERUBA_LOCAL_STRIPE_PORT, default 0 = any free port)",
    )  # fmt: skip
    parser.add_argument(
        "--no-stripe", action="store_true",
        help="no local Stripe: invoices are not pushed (stripe_not_configured), as with no API key on AWS",
    )  # fmt: skip
    parser.add_argument("--template", default="template.yaml", help="SAM template (default template.yaml)")
    parser.add_argument("--no-seed", action="store_true", help="do not create the demo data and API key")
    parser.add_argument("--no-schedules", action="store_true", help="fire schedules only on demand")
    parser.add_argument("--quiet", action="store_true", help="no line per request on stderr")
    parser.add_argument(
        "--state-dir", metavar="DIR", type=_state_dir,
        help="keep tables, queues and parameters across restarts in DIR (default: nothing is kept; moto "
        "holds everything in memory)",
    )  # fmt: skip
    parser.add_argument(
        "--snapshot-seconds", type=_seconds, default=60.0,
        help="with --state-dir: also save the tables every N seconds while running, in case of a crash "
        "(0: at the stop only; default 60)",
    )  # fmt: skip
    parser.add_argument(
        "--parameter", action="append", default=[], metavar="NAME=VALUE", type=_parameter,
        help="a template parameter, as sam deploy --parameter-overrides takes it (repeatable), "
        "e.g. BillingGraceSeconds=60 to finalize drafts a minute after their window",
    )  # fmt: skip
    return parser


def _parameter(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _seed() -> Any:
    """The demo data, or None (with a warning) when the seed module is missing or fails."""
    try:
        from neruba_tools.local.seed import seed_demo
    except ImportError as exc:
        print(f"warning: no demo seed ({exc}); create a key with `neruba keys create`", file=sys.stderr)
        return None
    try:
        return seed_demo()
    except Exception as exc:
        print(f"warning: seeding the demo failed: {exc!r}", file=sys.stderr)
        return None


def banner(stack: Any, demo: Any) -> list[str]:
    """The lines printed once the stack is up."""
    lines = [f"Base URL: {stack.base_url}"]
    if demo is not None:
        lines += [
            f"API key: {demo.api_key}",
            f"Demo customer: {demo.customer_id}",
            f"Demo meter: {demo.meter_code}",
        ]
        if getattr(demo, "plan_code", None):
            lines.append(f"Demo plan: {demo.plan_code}")
        event = {
            "transaction_id": "demo-1",
            "customer_id": demo.customer_id,
            "code": demo.meter_code,
            "properties": {"value": 1},
        }
        body = json.dumps({"events": [event]}, separators=(",", ":"))
        lines += [
            "Send one event:",
            f"  curl -s -X POST {stack.base_url}/v1/events -H 'Authorization: Bearer {demo.api_key}' "
            f"-H 'Content-Type: application/json' -d '{body}'",
        ]
    else:  # --no-seed: no key yet
        lines.append(
            "No API key (--no-seed); make the first one: "
            f"neruba keys create --scope admin --name platform --endpoint-url {stack.moto_url}"
        )
    lines += _stripe_lines(stack, demo)
    if getattr(stack, "state_dir", None):
        restored = getattr(stack, "restored", {}) or {}
        lines.append(
            f"State: kept in {stack.state_dir} (restored {restored.get('items', 0)} items, "
            f"{restored.get('messages', 0)} queued messages)"
        )
    else:
        lines.append(
            "State: in memory only; stopping the stack loses every table and queue "
            '(make run ARGS="--state-dir DIR" keeps them)'
        )
    lines += [
        f"Docs: {stack.base_url}/docs",
        f"Console: {stack.base_url}/console  (sign in with the API key above)",
        f"Moto endpoint: {stack.moto_url} (neruba: --endpoint-url {stack.moto_url}, or AWS_ENDPOINT_URL)",
        f"AWS CLI: AWS_DEFAULT_REGION={REGION} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test "
        f"aws --endpoint-url {stack.moto_url} sqs list-queues",
        f"Queues: curl -s {stack.base_url}/_local/queues",
    ]
    for name, schedule in stack.schedules.items():
        when = f"every {schedule.interval} s" if schedule.interval else schedule.expression
        if not schedule.timed:
            when = f"{schedule.expression}, on demand only: {schedule.problem}"
        elif not stack.with_schedules:
            when += ", on demand only (--no-schedules)"
        fire = f"curl -s -X POST {stack.base_url}/_local/schedules/{name}/fire"
        lines.append(f"Schedule {name} ({when}): fire now with {fire}")
    lines.append("Ctrl-C stops everything.")
    return lines


def _stripe_lines(stack: Any, demo: Any) -> list[str]:
    """The local Stripe's address and key, the webhook secret, and how to pay an invoice."""
    lines = []
    url = getattr(stack, "stripe_url", None)
    secret = getattr(stack, "stripe_webhook_secret", None) or getattr(demo, "stripe_webhook_secret", None)
    if url:
        from neruba_tools.local.stripe_local import LOCAL_API_KEY

        lines.append(f"Local Stripe: {url}  (API key {LOCAL_API_KEY}; finalized invoices are pushed to it)")
    if secret:
        lines.append(f"Stripe webhook secret: {secret}  (sign test events with it)")
    if url:
        lines.append(
            f"Pay an invoice: curl -s -X POST {stack.base_url}/_local/stripe/invoices/INVOICE_ID/pay"
        )
    return lines


def _state_dir(text: str) -> str:
    """A directory, or a path where one can be made: no existing file on the way."""
    path = Path(text)
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                raise argparse.ArgumentTypeError(f"{part} is not a directory")
            break
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):  # refuses nan, inf and negatives
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Start the stack and block until SIGINT/SIGTERM; 0 on a clean stop, 2 if a port is taken."""
    args = build_parser().parse_args(argv)
    from neruba_tools.local.stack import LocalStack, PortInUseError
    from neruba_tools.local.state import StateDirError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", "No application metrics to publish")  # POWERTOOLS_METRICS_DISABLED
    template = Path(args.template).resolve()
    try:
        stack = LocalStack(
            template.name, template.parent, args.host, args.port, args.moto_port,
            schedules=not args.no_schedules, log_requests=not args.quiet, parameters=dict(args.parameter),
            state_dir=args.state_dir, snapshot_interval=args.snapshot_seconds,
            stripe=not args.no_stripe, stripe_port=args.stripe_port,
        )  # fmt: skip
    except ValueError as exc:  # an unknown --parameter, or a value its definition does not allow
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    in_main = threading.current_thread() is threading.main_thread()
    previous = (
        {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)} if in_main else {}
    )
    try:
        try:
            stack.start()
        except (PortInUseError, StateDirError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for logical_id, error in stack.preload().items():
            print(f"warning: {logical_id} cannot run: {error}", file=sys.stderr)
        demo = None if args.no_seed else _seed()
        print("\n".join(banner(stack, demo)), flush=True)
        while not stopping.wait(0.5):
            pass
        return 0
    finally:
        started = stack.running
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if started:
            print("Stopped.", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
