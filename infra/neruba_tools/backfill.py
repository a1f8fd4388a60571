"""``neruba backfill``: open, fill, preview, commit, cancel, revert and read backfills through the API.

    neruba backfill open --customer acme [--customer ...] --meter api_calls [--meter ...]
                         --start ISO --end ISO [--mode add|replace] --reason TEXT [--ticket T] [--key K]
    neruba backfill events BACKFILL_ID FILE       (JSON lines, or one JSON array; "-" reads stdin)
    neruba backfill preview BACKFILL_ID
    neruba backfill commit BACKFILL_ID --reason TEXT [--ticket T] [--key K]
    neruba backfill cancel BACKFILL_ID --reason TEXT [--ticket T] [--key K]
    neruba backfill revert BACKFILL_ID --reason TEXT [--ticket T] [--key K]
    neruba backfill list [--status S]
    neruba backfill show BACKFILL_ID

Every command calls the API with the Python client (``clients/python``): ``--base-url`` (or
``NERUBA_BASE_URL``, or ``--stack``'s ``ApiUrl``) and an admin key in ``--api-key`` (or
``NERUBA_API_KEY``). Answers are printed as JSON; an error answer prints its code and message and exits 1.
``--key`` is the Idempotency-Key (a new one when left out): give the same key to retry a command safely.
Events are sent 100 per request; each keeps its transaction id, so sending a file again holds nothing
twice. A commit that answers ``committing`` (a revert: ``reverting``) left a step for later: run it again
(any key).
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from neruba_tools import api_call, api_target
from neruba_tools.argtypes import when

BATCH = 100  # events per request (the body of POST /v1/events)


def add_parser(commands: Any) -> None:
    backfill = commands.add_parser("backfill", help="backfills (admin key)").add_subparsers(
        dest="action", required=True
    )

    def command(name: str, help_text: str, func: Callable[..., int]) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = backfill.add_parser(name, help=help_text)
        api_target.add_arguments(sub)
        sub.set_defaults(func=lambda args: _run(args, func))
        return sub

    def audited(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--reason", required=True, help="why (audited)")
        sub.add_argument("--ticket", help="the ticket it answers (audited)")
        sub.add_argument("--key", "--idempotency-key", help="Idempotency-Key (default: a new one)")

    opened = command("open", "open a backfill", _open)
    opened.add_argument("--customer", action="append", required=True, help="a customer id (repeatable)")
    opened.add_argument("--meter", action="append", required=True, help="a meter code (repeatable)")
    opened.add_argument("--start", type=when, required=True, help="range start, ISO 8601")
    opened.add_argument("--end", type=when, required=True, help="range end (exclusive), ISO 8601")
    opened.add_argument(
        "--mode", choices=["add", "replace"], default="add", help="replace: the range's stored events voided"
    )
    audited(opened)
    sent = command("events", "send events (JSON lines or a JSON array) into an open backfill", _events)
    sent.add_argument("backfill_id")
    sent.add_argument("file", help='a file of events, or "-" for stdin')
    command("preview", "per invoice, the amount before and after the commit", _preview).add_argument(
        "backfill_id"
    )
    committed = command("commit", "count the held events and correct the invoices", _commit)
    committed.add_argument("backfill_id")
    audited(committed)
    cancelled = command("cancel", "cancel an open backfill", _cancel)
    cancelled.add_argument("backfill_id")
    audited(cancelled)
    reverted = command(
        "revert",
        "void a committed backfill's events, give back the events a replace voided, correct the invoices",
        _revert,
    )
    reverted.add_argument("backfill_id")
    audited(reverted)
    listing = command("list", "every backfill", _list)
    listing.add_argument(
        "--status", choices=["open", "committing", "committed", "reverting", "reverted", "cancelled"]
    )
    command("show", "one backfill", _show).add_argument("backfill_id")


def client_for(args: argparse.Namespace) -> Any:
    """The Python client on ``--base-url`` (or the stack's ApiUrl) with ``--api-key``."""
    from neruba_client import Neruba

    base_url, api_key = api_target.base_url(args), api_target.api_key(args)
    if not api_key:
        raise SystemExit("error: give --api-key (or NERUBA_API_KEY), an admin key")
    return Neruba(api_key, base_url=base_url)


def _run(args: argparse.Namespace, func: Callable[[Any, argparse.Namespace], int]) -> int:
    from neruba_client.errors import APIError, NerubaError

    try:
        return func(client_for(args), args)
    except APIError as exc:
        api_call.refusal(exc.status, exc.code, exc.message, exc.details[:20], sys.stderr, exc.param)
        return 1
    except NerubaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _print(answer: Any) -> None:
    data = answer.model_dump(mode="json") if hasattr(answer, "model_dump") else answer
    print(json.dumps(data, indent=2, sort_keys=True))


def _key(args: argparse.Namespace) -> str:
    return str(args.key or uuid.uuid4())


def _open(client: Any, args: argparse.Namespace) -> int:
    answer = client.admin.open_backfill(
        customer_ids=args.customer,
        meter_codes=args.meter,
        start=args.start,
        end=args.end,
        mode=args.mode,
        reason=args.reason,
        ticket=args.ticket,
        idempotency_key=_key(args),
    )
    _print(answer)
    return 0


class MalformedEventsError(ValueError):
    """Lines of the file that are not events: each named ``FILE:LINE: why``; nothing is sent."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def read_events(text: str, name: str = "-") -> list[tuple[str, dict[str, Any]]]:
    """The events of a JSON array or of JSON lines (blank lines skipped), each with where it is
    (``FILE:LINE`` for JSON lines, ``FILE[N]`` for an array). Raises :class:`MalformedEventsError` naming
    every line (or the array) that is not a JSON object."""
    stripped = text.strip()
    found: list[tuple[str, Any]] = []
    problems: list[str] = []
    if stripped.startswith("["):
        try:
            found = [(f"{name}[{n}]", event) for n, event in enumerate(json.loads(stripped))]
        except ValueError as exc:
            problems.append(f"{name}: not a JSON array ({exc})")
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                found.append((f"{name}:{number}", json.loads(line)))
            except ValueError:
                problems.append(f"{name}:{number}: not JSON")
    problems += [f"{where}: not a JSON object" for where, event in found if not isinstance(event, dict)]
    if problems:
        raise MalformedEventsError(problems)
    return [(where, event) for where, event in found]


def _batches(events: list[tuple[str, dict[str, Any]]]) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    for start in range(0, len(events), BATCH):
        yield events[start : start + BATCH]


def _events(client: Any, args: argparse.Namespace) -> int:
    if args.file == "-":
        text = sys.stdin.read()
    else:
        with open(args.file, encoding="utf-8") as handle:
            text = handle.read()
    try:
        events = read_events(text, args.file)
    except MalformedEventsError as exc:
        for problem in exc.problems[:100]:
            print(problem, file=sys.stderr)
        count = len(exc.problems)
        print(
            f"error: {count} malformed line(s), nothing sent: fix them and send the file again",
            file=sys.stderr,
        )
        return 2
    totals = {"held": 0, "duplicate": 0, "conflict": 0, "rejected": 0}
    for batch in _batches(events):
        answer = client.admin.send_backfill_events(args.backfill_id, [event for _, event in batch])
        for status in answer.events:
            totals[status.status] += 1
            if status.error is not None:
                where = batch[status.index][0]
                print(
                    f"{where}: {status.error.code}: {status.error.message} ({status.error.param})",
                    file=sys.stderr,
                )
    _print({"backfill_id": args.backfill_id, "sent": len(events), **totals})
    return 0 if totals["rejected"] == 0 else 1


def _preview(client: Any, args: argparse.Namespace) -> int:
    _print(client.admin.preview_backfill(args.backfill_id))
    return 0


def _commit(client: Any, args: argparse.Namespace) -> int:
    answer = client.admin.commit_backfill(
        args.backfill_id, reason=args.reason, ticket=args.ticket, idempotency_key=_key(args)
    )
    _print(answer)
    if answer.status == "committing":
        print("still committing: run the commit again in a few minutes", file=sys.stderr)
        return 3
    return 0


def _cancel(client: Any, args: argparse.Namespace) -> int:
    answer = client.admin.cancel_backfill(
        args.backfill_id, reason=args.reason, ticket=args.ticket, idempotency_key=_key(args)
    )
    _print(answer)
    return 0


def _revert(client: Any, args: argparse.Namespace) -> int:
    answer = client.admin.revert_backfill(
        args.backfill_id, reason=args.reason, ticket=args.ticket, idempotency_key=_key(args)
    )
    _print(answer)
    if answer.status == "reverting":
        print("still reverting: run the revert again in a few minutes", file=sys.stderr)
        return 3
    return 0


def _list(client: Any, args: argparse.Namespace) -> int:
    _print({"data": [b.model_dump(mode="json") for b in client.admin.backfills(status=args.status)]})
    return 0


def _show(client: Any, args: argparse.Namespace) -> int:
    _print(client.admin.backfill(args.backfill_id))
    return 0
