"""The Python client's event batcher through the fault proxy to a fresh local stack, at volume:
``python -m benchmarks.client_faults --events 10000`` (writes benchmarks/results/client_faults.json).

Same scenario as tests/client/test_client_faults.py (tests/support/client_faults.py): seeded faults
(500 before/after the stack, dropped connections before/after, answers held past the client timeout),
batches of 100, then the stack's counts read back: the customer's usage (events and exact total), the
stack's outcome totals (the stack is fresh, so they are the run's), the ingest DLQ, and the outcomes of a
sample of the events (``--check-each``, every event when 0).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from tests.conftest import TEST_ENVIRONMENT

for key, value in {**TEST_ENVIRONMENT, "POWERTOOLS_LOG_LEVEL": "ERROR"}.items():
    os.environ.setdefault(key, value)
os.environ.pop("AWS_ENDPOINT_URL", None)

OUT = Path(__file__).parent / "results" / "client_faults.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--client-timeout", type=float, default=8.0)
    parser.add_argument("--delay-seconds", type=float, default=12.0)
    parser.add_argument(
        "--check-each", type=int, default=1000, help="events whose outcomes are read (0: all)"
    )
    parser.add_argument("--settle-timeout", type=float, default=3600.0)
    parser.add_argument("--note", default="", help="a remark stored with the results (shown in the report)")
    args = parser.parse_args(argv)

    from neruba_tools.local.seed import seed_demo
    from tests.support.client_faults import send_through_faults
    from tests.support.fault_proxy import FaultPlan
    from tests.support.stack import started_local_stack

    started = time.monotonic()
    with started_local_stack("neruba-client-bench") as stack:
        demo = seed_demo()
        run = send_through_faults(
            stack,
            demo.api_key,
            args.events,
            FaultPlan(seed=args.seed, delay_seconds=args.delay_seconds),
            batch_size=args.batch_size,
            client_timeout=args.client_timeout,
            settle_timeout=args.settle_timeout,
            check_each=args.check_each or None,
        )
    result = run.as_dict()
    exact = (
        run.usage_events == args.events
        and run.usage_total == run.expected_total
        and run.outcome_totals.get("accepted") == args.events
        and set(run.accepted_copies) == {1}
        and not run.failures
        and run.dead_letters == 0
    )
    result.update(
        {
            "exact": exact,
            "batch_size": args.batch_size,
            "seconds_total": round(time.monotonic() - started, 1),
            "events_per_second_sent": round(args.events / run.send_seconds, 1) if run.send_seconds else None,
            "command": "python -m benchmarks.client_faults " + " ".join(_without_note(argv or sys.argv[1:])),
            "note": args.note,
        }
    )
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "failures"}, indent=2))
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())


def _without_note(arguments: list[str]) -> list[str]:
    """The command line as run, without ``--note`` and its text (``--note X`` or ``--note=X``).

    Example:
        >>> _without_note(["--events", "10", "--note", "a b", "--seed", "3", "--note=x"])
        ['--events', '10', '--seed', '3']
    """
    kept: list[str] = []
    skip = False
    for argument in arguments:
        if skip:
            skip = False
        elif argument == "--note":
            skip = True
        elif not argument.startswith("--note="):
            kept.append(argument)
    return kept
