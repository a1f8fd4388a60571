"""``neruba sweep``: run the consistency checks now, in this process, and print the report.

    neruba sweep [--check NAME ...] [--from ISO] [--to ISO] [--stack NAME] [--json]
    neruba sweep --list-checks

Without ``--from``/``--to`` it sweeps the last two hours. The window is cut into two-hour pieces, each
stored as its own report (readable at ``GET /admin/sweeps/{id}``). Exit code 0 when every check ran (even if
it repaired something), 1 when a check failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from neruba_tools.argtypes import when

PIECE = timedelta(hours=2)
MAX_WINDOW = timedelta(days=14)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("sweep", help="run the consistency sweep now")
    parser.add_argument("--check", action="append", help="a check to run (repeatable; default: all)")
    parser.add_argument("--from", dest="start", type=when, help="window start, ISO 8601 (default: to - 2h)")
    parser.add_argument("--to", dest="end", type=when, help="window end, ISO 8601 (default: now)")
    parser.add_argument("--stack", help="CloudFormation stack whose tables to use (default: NERUBA_* env)")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    parser.add_argument("--list-checks", action="store_true", help="list the registered checks and exit")
    parser.set_defaults(func=run)


def _print_report(report: dict[str, Any]) -> None:
    window = report["window"]
    print(f"Sweep {report['id']} {window['from']} .. {window['to']}: {report['status']}")
    for check in report["checks"]:
        checked = ", ".join(f"{v} {k}" for k, v in check["checked"].items()) or "-"
        line = (
            f"  {check['name']:<10} checked {checked}; found {check['found']}; repaired {check['repaired']}"
        )
        print(line + (f"; ERROR {check['error']}" if check["error"] else ""))
        for repair in check["repairs"]:
            print(f"    repaired {json.dumps(repair, default=str, sort_keys=True)}")


def run(args: argparse.Namespace) -> int:
    from neruba.logic.sweeps.runner import check_names
    from neruba_tools.stackinfo import use_stack_settings

    if args.list_checks:
        print(json.dumps(check_names()) if args.json else "\n".join(check_names()))
        return 0
    unknown = [c for c in args.check or [] if c not in check_names()]
    if unknown:
        print(f"Unknown check(s) {', '.join(unknown)}; known: {', '.join(check_names())}.", file=sys.stderr)
        return 2
    end = args.end or datetime.now(UTC)
    start = args.start or end - PIECE
    if not start < end or end - start > MAX_WINDOW:
        print(f"--from must be before --to, at most {MAX_WINDOW.days} days apart.", file=sys.stderr)
        return 2
    use_stack_settings(args.stack)  # a StackError is the CLI's one-line error (exit 2)
    from neruba import bootstrap
    from neruba.logic.sweeps.runner import run_sweep
    from neruba.timefmt import answer_times

    ops = bootstrap.ops()
    failed = False
    piece_start = start
    while piece_start < end:
        piece_end = min(piece_start + PIECE, end)
        report = run_sweep(
            ops, args.check, piece_start, piece_end, trigger="cli", actor="cli", billing=bootstrap.billing
        )
        failed = failed or report["status"] != "ok"
        report = answer_times(report)  # its times as GET /admin/sweeps/{id} gives them
        if args.json:
            print(json.dumps(report, default=str, sort_keys=True))
        else:
            _print_report(report)
        piece_start = piece_end
    return 1 if failed else 0
