"""``neruba events``: void or amend an accepted event through the API (admin key).

    neruba events void TX --customer ID --reason TEXT --ticket REF [--idempotency-key KEY]
    neruba events amend TX --customer ID --reason TEXT --ticket REF
                          [--properties JSON] [--timestamp ISO] [--idempotency-key KEY]
    (both take --base-url URL, --stack NAME or NERUBA_BASE_URL, and --api-key KEY or NERUBA_API_KEY:
    neruba_tools.api_target)

They call ``POST /admin/events/{TX}/void`` and ``/amend`` through ``neruba_tools.api_call`` and print
the answer. Without ``--idempotency-key`` the key is derived from the request (printed on stderr), so
running the same command again is a retry: it returns the first answer and finishes a correction left
pending, never voids twice. Exit 0 on 200, 1 on a refusal (``refused: HTTP 409 code: message`` and the
error's details), 2 when the call could not be made. docs/runbooks/event-corrections.md.
"""

from __future__ import annotations

import argparse
import json
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from neruba_tools import api_call, api_target


def add_parser(commands: Any) -> None:
    events = commands.add_parser("events", help="void or amend accepted events").add_subparsers(
        dest="action", required=True
    )
    void = events.add_parser("void", help="void an accepted event (its usage stops counting)")
    amend = events.add_parser("amend", help="void an event and count a corrected copy in its place")
    for parser in (void, amend):
        parser.add_argument("transaction_id", metavar="TX", help="the event's transaction id")
        parser.add_argument("--customer", required=True, help="the event's customer (external id)")
        parser.add_argument("--reason", required=True, help="why (audited, shown on the event)")
        parser.add_argument("--ticket", required=True, help="the ticket asking for it (audited)")
        parser.add_argument("--idempotency-key", "--key", help="default: derived from the arguments")
        api_target.add_arguments(parser)
    amend.add_argument("--properties", type=_properties, help="the corrected properties, whole, as JSON")
    amend.add_argument("--timestamp", help="the corrected timestamp, RFC 3339 with offset")
    void.set_defaults(func=api_call.run, build=build, path="void")
    amend.set_defaults(func=api_call.run, build=build, path="amend")


def _properties(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text, parse_float=Decimal)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("give a JSON object, e.g. '{\"tokens\": 120}'")
    return value


def build(args: argparse.Namespace) -> tuple[str, str, Any, dict[str, str]]:
    """The route and body of the command (``neruba_tools.api_call`` sends them)."""
    body: dict[str, Any] = {"customer_id": args.customer, "reason": args.reason, "ticket": args.ticket}
    if args.path == "amend":
        if args.properties is not None:
            body["properties"] = args.properties
        if args.timestamp is not None:
            body["timestamp"] = args.timestamp
    return "POST", f"/admin/events/{quote(args.transaction_id, safe='')}/{args.path}", body, {}
