"""``neruba events``: void or amend an accepted event through the API (admin key).

    neruba events void TX --customer ID --reason TEXT --ticket REF [--idempotency-key KEY]
    neruba events amend TX --customer ID --reason TEXT --ticket REF
                          [--properties JSON] [--timestamp ISO] [--idempotency-key KEY]
    (both take --base-url URL, --stack NAME or NERUBA_BASE_URL, and --api-key KEY or NERUBA_API_KEY:
    neruba_tools.api_target)

They call ``POST /admin/events/{TX}/void`` and ``/amend`` and print the answer. Without
``--idempotency-key`` the key is derived from the command's arguments, so running the same command again
is a retry: it returns the first answer and finishes a correction left pending, never voids twice.
Exit 0 on 200, 1 on a refusal (the error's code and message are printed), 2 when the call could not be
made. docs/runbooks/event-corrections.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import urllib.error
import urllib.request
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from neruba_tools import api_target


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
    void.set_defaults(func=run, path="void")
    amend.set_defaults(func=run, path="amend")


def _properties(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text, parse_float=Decimal)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("give a JSON object, e.g. '{\"tokens\": 120}'")
    return value


def request_body(args: argparse.Namespace) -> dict[str, Any]:
    """The route's body from the command's arguments."""
    body: dict[str, Any] = {"customer_id": args.customer, "reason": args.reason, "ticket": args.ticket}
    if args.path == "amend":
        if args.properties is not None:
            body["properties"] = args.properties
        if args.timestamp is not None:
            body["timestamp"] = args.timestamp
    return body


def default_key(args: argparse.Namespace, body: dict[str, Any]) -> str:
    """The same command, the same key: a rerun is a retry."""
    seed = json.dumps({"a": args.path, "tx": args.transaction_id, "b": body}, sort_keys=True, default=str)
    return "cli-" + hashlib.sha256(seed.encode()).hexdigest()[:40]


def run(args: argparse.Namespace) -> int:
    base_url, api_key = api_target.base_url(args), api_target.api_key(args)
    if not api_key:
        print("error: give --api-key (or NERUBA_API_KEY), an admin key", file=sys.stderr)
        return 2
    body = request_body(args)
    key = args.idempotency_key or default_key(args, body)
    path = f"/admin/events/{quote(args.transaction_id, safe='')}/{args.path}"
    from neruba import jsonutil

    data = jsonutil.dumps(body).encode()  # decimals as exact JSON numbers, never floats
    request = urllib.request.Request(base_url.rstrip("/") + path, data=data, method="POST")  # noqa: S310
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {api_key}")
    request.add_header("Idempotency-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            status, text = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        print(f"error: POST {path} could not connect: {error}", file=sys.stderr)
        return 2
    try:
        answer = json.loads(text or b"null")
    except ValueError:
        answer = text.decode(errors="replace")
    if status == 200:
        print(json.dumps(answer, indent=2, sort_keys=True))
        print(f"Idempotency-Key: {key}")
        return 0
    error = answer.get("error", {}) if isinstance(answer, dict) else {}
    print(f"refused ({status}) {error.get('code')}: {error.get('message') or answer}", file=sys.stderr)
    if error.get("details"):  # which field, and why (a validation error names each)
        print(json.dumps(error["details"], indent=2, sort_keys=True), file=sys.stderr)
    return 1
