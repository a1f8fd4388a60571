"""``neruba smoke``: one known-good sequence against a running stack; exit 1 at the first failing step.

    neruba smoke --base-url URL --api-key KEY [--customer ID] [--meter CODE] [--timeout 60]

Steps: ``health`` (200 ok), ``ready`` (200), ``ingest`` (one tagged event, 202 and queued), ``accepted``
(the worker recorded it: outcome accepted), ``read-back`` (the stored event matches what was sent),
``duplicate`` (the same event again ends with a ``duplicate`` outcome). Each passing step prints
``ok   STEP (ms)``; the first failing one prints ``FAIL STEP: reason`` and stops.

The event has ``transaction_id`` ``smoke-{utc time}-{random}`` and the property ``smoke: "true"``; it is
metered like any event, so point ``--customer`` at a customer kept for smoke tests (default
``NERUBA_SMOKE_CUSTOMER`` or ``demo-customer``) whose meter (``--meter``, default ``NERUBA_SMOKE_METER`` or
``api_calls``) sums ``value`` or counts events.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from neruba_tools import api_target


class SmokeFailure(Exception):
    """A step did not see what it expected."""


@dataclass
class Smoke:
    base_url: str
    api_key: str
    customer: str
    meter: str
    timeout: float = 60.0
    out: Callable[[str], None] = print

    def http(self, method: str, path: str, body: Any = None, key: bool = True) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url.rstrip("/") + path, data=data, method=method)  # noqa: S310
        request.add_header("Content-Type", "application/json")
        if key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
                status, text = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read()
        except (urllib.error.URLError, OSError) as error:
            raise SmokeFailure(f"{method} {path} could not connect: {error}") from error
        try:
            return status, json.loads(text or b"null")
        except ValueError:
            return status, text.decode(errors="replace")[:200]

    def expect(self, method: str, path: str, status: int, body: Any = None, key: bool = True) -> Any:
        got, answer = self.http(method, path, body, key)
        if got != status:
            error = answer.get("error", {}) if isinstance(answer, dict) else {}
            if error:
                detail = f"{error.get('code')}: {error.get('message')}"
                first = (error.get("details") or [None])[0]
                if isinstance(first, dict):  # a refused event: say why (unknown_customer, ...)
                    detail += f" {first.get('param')} {first.get('code')}: {first.get('message')}"
            else:  # not our error shape: perhaps not the API at all
                page = " ".join(str(answer).split())[:160]
                detail = f"{page}; not the API's answer: is --base-url the API's Base URL?"
            raise SmokeFailure(f"{method} {path} answered {got}, expected {status} ({detail})")
        return answer

    def wait_outcomes(self, transaction_id: str, want: Callable[[list[str]], bool]) -> dict[str, Any]:
        path = f"/v1/events/{quote(transaction_id)}?customer_id={quote(self.customer)}"
        deadline = time.monotonic() + self.timeout
        last: Any = None
        while time.monotonic() < deadline:
            status, body = self.http("GET", path)
            if status == 200:
                last = body
                outcomes = [o["outcome"] for o in body.get("outcomes", [])]
                if "failed" in outcomes and body.get("status") == "failed":
                    raise SmokeFailure(f"the worker parked the event as failed: {body.get('reason')}")
                if want(outcomes):
                    return dict(body)
            elif status not in (404,):
                raise SmokeFailure(f"GET {path} answered {status}: {body}")
            time.sleep(0.5)
        seen = [o["outcome"] for o in last.get("outcomes", [])] if isinstance(last, dict) else "no event"
        raise SmokeFailure(
            f"no expected outcome within {self.timeout:.0f} s (seen: {seen}); is the worker running?"
        )

    def steps(self) -> list[tuple[str, Callable[[], None]]]:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        transaction_id = f"smoke-{stamp}-{secrets.token_hex(4)}"
        event = {
            "transaction_id": transaction_id,
            "customer_id": self.customer,
            "code": self.meter,
            "properties": {"value": 1, "smoke": "true"},
        }

        def health() -> None:
            body = self.expect("GET", "/health", 200, key=False)
            if not isinstance(body, dict) or body.get("status") != "ok":
                raise SmokeFailure(f"/health said {body}")

        def ready() -> None:
            self.expect("GET", "/ready", 200, key=False)

        def ingest() -> None:
            self.expect("POST", "/v1/events", 202, {"events": [event]})

        def accepted() -> None:
            self.wait_outcomes(transaction_id, lambda o: "accepted" in o or "replay" in o)

        def read_back() -> None:
            body = self.wait_outcomes(transaction_id, lambda o: bool(o))
            stored = (body.get("customer_id"), body.get("code"), (body.get("properties") or {}).get("smoke"))
            if stored != (self.customer, self.meter, "true") or body.get("status") != "accepted":
                raise SmokeFailure(f"the stored event differs from the one sent: {body}")

        def duplicate() -> None:
            self.expect("POST", "/v1/events", 202, {"events": [event]})
            self.wait_outcomes(transaction_id, lambda o: "duplicate" in o)

        return [
            ("health", health),
            ("ready", ready),
            ("ingest", ingest),
            ("accepted", accepted),
            ("read-back", read_back),
            ("duplicate", duplicate),
        ]

    def run(self) -> int:
        for name, step in self.steps():
            started = time.monotonic()
            try:
                step()
            except SmokeFailure as exc:
                self.out(f"FAIL {name}: {exc}")
                return 1
            self.out(f"ok   {name} ({(time.monotonic() - started) * 1000:.0f} ms)")
        self.out("Smoke test passed.")
        return 0


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("smoke", help="known-good sequence against a running stack")
    api_target.add_arguments(parser, "an ingest+read key")
    parser.add_argument("--customer", default=os.environ.get("NERUBA_SMOKE_CUSTOMER", "demo-customer"))
    parser.add_argument("--meter", default=os.environ.get("NERUBA_SMOKE_METER", "api_calls"))
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each outcome")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    base_url, api_key = api_target.base_url(args), api_target.api_key(args)
    if not api_key:
        print("FAIL setup: give --api-key (or NERUBA_API_KEY)")
        return 2
    return Smoke(base_url, api_key, args.customer, args.meter, args.timeout).run()
