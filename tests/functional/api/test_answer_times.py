"""Every date-time in every API answer reads in UTC with ``Z`` (``2026-03-01T12:00:00Z``), whichever route
built the answer and whichever format the time was stored in (docs/api.md, "Times in answers").

The walk: a customer with a subscription, usage, credit, a one-off charge, a webhook endpoint (and the events
the changes queued), a billing run and a sweep, made over the API; then every GET route of template.yaml is
called with the ids those answers gave. Each answer (the POSTs' too) is checked for a time in another form.
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from tests.functional.api.test_access_control import ROUTES
from tests.support.api import api_event, call
from tests.support.aws import queue_url
from tests.support.contract import DATE_TIME, time_problems
from tests.support.queues import drain

STARTED = datetime.now(UTC) - timedelta(days=3)
PLAN = {
    "code": "pro",
    "name": "Pro",
    "currency": "USD",
    "interval": "month",
    "fixed_fee": {"amount": "30.00", "timing": "advance"},
    "charges": [{"meter_code": "api_calls", "model": "per_unit", "unit_price": "0.01"}],
}
VERSION = {key: value for key, value in PLAN.items() if key != "code"}
# a window in the caller's own offset (+02:00): answered in UTC with Z all the same
WINDOW = {
    "from": (datetime.now(UTC) - timedelta(days=1)).astimezone(timezone(timedelta(hours=2))).isoformat(),
    "to": (datetime.now(UTC) + timedelta(hours=1)).astimezone(timezone(timedelta(hours=2))).isoformat(),
}
QUERY = {
    "/admin/audit": {"customer_id": "acme"},
    "/admin/webhook-events": {"customer_id": "acme"},
    "/v1/invoices": {"customer_id": "acme"},
    "/v1/events": {"customer_id": "acme", **WINDOW},
    "/v1/events/{transaction_id}": {"customer_id": "acme"},
    "/v1/customers/{customer_id}/usage": {"meter": "api_calls", **WINDOW},
    "/v1/ingest/outcomes": WINDOW,
}
FOLDER = {(method, path): folder for folder, method, path, _ in ROUTES}


class Walk:
    """Calls a route through the function template.yaml gives it, keeping each answer's times."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.times = 0

    def __call__(
        self, method: str, template: str, body: Any = None, query: dict[str, str] | None = None, **ids: str
    ) -> tuple[int, Any]:
        module = importlib.import_module(f"functions.{FOLDER[(method, template)]}.app")
        path = template.format(**ids)
        headers = {"Idempotency-Key": f"walk-{path}"} if method == "POST" else None
        event = api_event(
            method,
            path,
            body=body,
            query=query,
            path_parameters=ids or None,
            scopes="ingest read admin",
            headers=headers,
        )
        status, answer, _ = call(module.lambda_handler, event, check_contract=False)
        self.problems += time_problems(answer, f"{method} {path}")
        self.times += _count_times(answer)
        return status, answer


def _count_times(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_count_times(item) for item in value.values())
    if isinstance(value, list):
        return sum(_count_times(item) for item in value)
    return int(isinstance(value, str) and bool(DATE_TIME.match(value)))


def _made(walk: Walk, method: str, template: str, body: Any, **ids: str) -> Any:
    status, answer = walk(method, template, body, **ids)
    assert status in (200, 201, 202), (method, template, status, repr(answer))
    return answer


def _seed(walk: Walk) -> dict[str, str]:
    hook = {"url": "http://127.0.0.1:8123/hooks", "enabled_events": ["customer.created"]}
    endpoint = _made(walk, "POST", "/admin/webhook-endpoints", hook)
    customer = {"external_id": "acme", "name": "Acme", "currency": "USD", "metadata": {"since": "x"}}
    _made(walk, "POST", "/v1/customers", customer)
    _made(walk, "POST", "/v1/meters", {"code": "api_calls", "name": "API calls", "aggregation": "count"})
    _made(walk, "POST", "/v1/plans", PLAN)
    version = _made(walk, "POST", "/v1/plans/{plan_code}/versions", VERSION, plan_code="pro")
    sub = _made(
        walk,
        "POST",
        "/v1/subscriptions",
        {"customer_id": "acme", "plan_code": "pro", "start_at": STARTED.isoformat()},
    )
    at = (datetime.now(UTC) - timedelta(hours=1)).astimezone().isoformat()
    event = {"transaction_id": "tx-1", "customer_id": "acme", "code": "api_calls", "timestamp": at}
    _made(walk, "POST", "/v1/events", {"events": [event]})
    from functions.ingest_worker import app as ingest_worker

    drain(ingest_worker.lambda_handler, queue_url("IngestQueue"))
    grant = {
        "kind": "promotional",
        "amount_minor": 500,
        "reason": "launch",
        "expires_at": "2030-01-01T00:00:00+02:00",
    }
    _made(walk, "POST", "/admin/customers/{customer_id}/credit-grants", grant, customer_id="acme")
    charge = {
        "amount_minor": 700,
        "currency": "USD",
        "description": "Setup",
        "reason": "setup",
        "mode": "invoice_now",
    }
    _made(walk, "POST", "/admin/customers/{customer_id}/one-off-charges", charge, customer_id="acme")
    scope = {
        "customer_ids": ["acme"],
        "meter_codes": ["api_calls"],
        "start": STARTED.astimezone(timezone(timedelta(hours=2))).isoformat(),
        "end": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "reason": "lost usage",
    }
    backfill = _made(walk, "POST", "/admin/backfills", scope)
    run = _made(walk, "POST", "/admin/billing-runs", {"customer_id": "acme", "reason": "walk-through"})
    sweep = _made(
        walk,
        "POST",
        "/admin/sweeps",
        {"from": (datetime.now(UTC) - timedelta(hours=2)).astimezone().isoformat()},
    )
    from functions.webhook_relay import app as relay
    from tests.support.lambda_context import FakeContext

    relay.lambda_handler({}, FakeContext())
    _, events = walk("GET", "/admin/webhook-events", query={"customer_id": "acme"})
    _, invoices = walk("GET", "/v1/invoices", query={"customer_id": "acme"})
    return {
        "customer_id": "acme",
        "subscription_id": sub["id"],
        "code": "api_calls",
        "plan_code": "pro",
        "version": str(version["version"]),
        "transaction_id": "tx-1",
        "endpoint_id": endpoint["id"],
        "event_id": events["data"][0]["id"] if events.get("data") else "evt_none",
        "run_id": run.get("id") or run.get("run_id") or "run_none",
        "sweep_id": sweep.get("id") or "sweep_none",
        "invoice_id": invoices["data"][0]["id"] if invoices.get("data") else "in_none",
        "backfill_id": backfill["id"],
    }


def test_every_answer_gives_its_times_in_utc_with_z(aws: dict[str, str]) -> None:
    # GIVEN an account with something behind every read route, made over the API
    walk = Walk()
    ids = _seed(walk)
    # WHEN every GET route is read
    answered = []
    for folder, method, template, _public in ROUTES:
        if method != "GET" or template in ("/docs", "/openapi.json") or folder == "console":
            continue
        needed = {name: ids.get(name, "x1") for name in _names(template)}
        status, _ = walk("GET", template, query=QUERY.get(template), **needed)
        if status == 200:
            answered.append(template)
    # AND the reads that label buckets are read at each granularity
    hours = {"from": (datetime.now(UTC) - timedelta(hours=3)).isoformat(), "to": WINDOW["to"]}
    for granularity in ("minute", "hour"):
        status, _ = walk("GET", "/v1/ingest/outcomes", query={**hours, "granularity": granularity})
        assert status == 200, granularity
    for granularity in ("hour", "day", "period"):
        query = {"meter": "api_calls", **WINDOW, "granularity": granularity}
        status, _ = walk("GET", "/v1/customers/{customer_id}/usage", query=query, customer_id="acme")
        assert status == 200, granularity
    # THEN no answer gives a time in another form, and the walk saw many times on many routes
    assert walk.problems == [], "\n".join(walk.problems)
    assert walk.times >= 100, walk.times
    assert len(answered) >= 37, answered  # all but a Stripe event (none came in)


def _names(template: str) -> list[str]:
    import re

    return re.findall(r"\{(\w+)\}", template)


def test_the_check_finds_a_time_with_an_offset() -> None:
    answer = {
        "data": [{"created_at": "2026-03-01T12:00:00+00:00", "metadata": {"at": "2026-03-01T12:00:00+02:00"}}]
    }
    assert time_problems(answer) == [
        "/data/0/created_at: the time '2026-03-01T12:00:00+00:00' is not in UTC with Z"
    ]
    assert time_problems({"created_at": "2026-03-01T12:00:00.5Z", "name": "2026"}) == []


def test_the_check_finds_a_label_cut_short() -> None:
    # a bucket labelled by its hour, minute or day, as a value or as a map's key, is not a full time
    answer = {
        "data": [{"bucket": "2026-03-01T06"}, {"start": "2026-03-01T06:05"}, {"bucket": "2026-03-01"}],
        "hours": {"2026-03-01T07": 2},
        "window": {"start": "2026-03-01T06:00:00Z"},
        "total": "total",
        "metadata": {"day": "2026-03-01"},
        "payload": {"api_version": "2024-06-20"},  # a date that is not a time's label (Stripe's version)
    }
    assert time_problems(answer) == [
        "/data/0/bucket: the time '2026-03-01T06' is not in UTC with Z",
        "/data/1/start: the time '2026-03-01T06:05' is not in UTC with Z",
        "/data/2/bucket: the time '2026-03-01' is not in UTC with Z",
        "/hours/2026-03-01T07: the key '2026-03-01T07' is a time not in UTC with Z",
    ]
