"""``neruba webhooks``: a local receiver that prints verified events, and resending deliveries.

    neruba webhooks listen --port 8123 --secret whsec_... [--host 127.0.0.1]
    neruba webhooks resend (--event evt_... | --failed-since ISO) [--endpoint we_...] [--stack NAME]

``listen`` serves ``POST`` on every path of ``http://HOST:PORT``; register that URL as an endpoint
(``POST /admin/webhook-endpoints``; the local stage allows http to a loopback host) and pass the secret
the answer showed. Each request is answered 200 when its ``Neruba-Signature`` verifies (the event is
printed), 400 otherwise (the reason is printed). Repeat ``--secret`` during a rotation's overlap.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from neruba_tools.argtypes import bounded_int, when


def add_parser(commands: Any) -> None:
    hooks = commands.add_parser("webhooks", help="outgoing webhooks").add_subparsers(
        dest="action", required=True
    )
    listen = hooks.add_parser("listen", help="receive, verify and print events locally")
    listen.add_argument("--port", type=bounded_int(1, 65535), default=8123, help="port (default 8123)")
    listen.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    listen.add_argument(
        "--secret", action="append", required=True, help="the endpoint's whsec_... (repeatable)"
    )
    listen.set_defaults(func=_listen)
    resend = hooks.add_parser("resend", help="send one event, or every delivery failed since a time, again")
    target = resend.add_mutually_exclusive_group(required=True)
    target.add_argument("--event", help="an event id (evt_...)")
    target.add_argument("--failed-since", type=when, help="every delivery that failed since, ISO 8601")
    resend.add_argument("--endpoint", help="only this endpoint (we_...)")
    resend.add_argument("--stack", help="CloudFormation stack whose tables and queue to use")
    resend.set_defaults(func=_resend)


MAX_BODY_BYTES = 1 << 20  # far above any event Neruba sends


def make_handler(secrets: Sequence[str], out: Callable[[str], None]) -> type[BaseHTTPRequestHandler]:
    """A request handler that verifies each POST with ``secrets`` and reports it through ``out``."""
    from neruba.logic.webhooks.signing import HEADER, SignatureError, check

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = (self.headers.get("Content-Length") or "0").strip()
            if not (length.isascii() and length.isdigit() and int(length) <= MAX_BODY_BYTES):
                out(f"REFUSED {self.path}: Content-Length {length[:20]!r} is not a size up to 1 MiB")
                self.close_connection = True  # the body's end is unknown: read nothing more
                self._answer(400, {"verified": False, "reason": "bad Content-Length"})
                return
            raw = self.rfile.read(int(length))
            try:
                check(raw, self.headers.get(HEADER) or "", list(secrets))
                event = json.loads(raw)
            except (SignatureError, ValueError) as exc:
                out(f"REFUSED {self.path}: {exc}")
                self._answer(400, {"verified": False, "reason": str(exc)})
                return
            head = f"{event.get('type')} {event.get('id')} customer={event.get('customer_id')}"
            out(f"{head} sequence={event.get('sequence')}\n{json.dumps(event, indent=2, sort_keys=True)}")
            self._answer(200, {"verified": True})

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            return

    return Handler


def _listen(args: argparse.Namespace) -> int:
    server = ThreadingHTTPServer(
        (args.host, args.port), make_handler(args.secret, lambda line: print(line, flush=True))
    )
    print(f"Listening on http://{args.host}:{server.server_address[1]}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _resend(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from neruba_tools.stackinfo import StackError, use_stack_settings

    try:
        use_stack_settings(args.stack)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from neruba import bootstrap
    from neruba.logic.webhooks.delivery import resend

    hooks = bootstrap.webhooks()
    if args.event and hooks.repo.event(args.event) is None:
        print(f"No webhook event {args.event}.", file=sys.stderr)
        return 1
    done = resend(
        hooks,
        datetime.now(UTC),
        event_id=args.event,
        failed_since=args.failed_since,
        endpoint_id=args.endpoint,
    )
    for item in done:
        print(f"resent {item['event_id']} -> {item['endpoint_id']}")
    print(f"{len(done)} deliveries queued again")
    return 0
