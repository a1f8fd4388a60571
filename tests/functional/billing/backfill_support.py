"""Helpers of the backfill tests: the billing API handler over HTTP-shaped events, a billed world."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day, schedule, work
from tests.support.api import api_event, call

PRICE = 10  # the "basic" plan: 10 minor units per API call


def handler() -> Any:
    from functions.billing_api.app import lambda_handler

    return lambda_handler


def open_backfill(body: dict[str, Any], key: str | None = "bf-1") -> tuple[int, Any]:
    headers = {"Idempotency-Key": key} if key else {}
    status, answer, _ = call(handler(), api_event("POST", "/admin/backfills", body=body, headers=headers))
    return status, answer


def scope(**extra: Any) -> dict[str, Any]:
    """acme's api_calls over days 0 to 3 of the world."""
    body = {
        "customer_ids": ["acme"],
        "meter_codes": ["api_calls"],
        "start": START.isoformat(),
        "end": (START + day(4)).isoformat(),
        "reason": "usage lost by the collector",
        "ticket": "OPS-7",
    }
    return {**body, **extra}


def events(backfill_id: str, items: list[dict[str, Any]], customer: str = "acme") -> tuple[int, Any]:
    body = {"events": [{"customer_id": customer, "code": "api_calls", "properties": {}, **e} for e in items]}
    path = f"/admin/backfills/{backfill_id}/events"
    event = api_event("POST", path, body=body, path_parameters={"backfill_id": backfill_id})
    status, answer, _ = call(handler(), event)
    return status, answer


def calls(prefix: str, at: datetime, n: int) -> list[dict[str, Any]]:
    """``n`` events at ``at`` with transaction ids ``{prefix}-{i}``."""
    return [{"transaction_id": f"{prefix}-{i}", "timestamp": at.isoformat()} for i in range(n)]


def act(
    backfill_id: str, action: str, key: str | None = None, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """The action on the backfill over HTTP; without ``key``, one of this backfill and action (a key
    names one request: the same key on another backfill is 409 ``idempotency_conflict``)."""
    key = key or f"{action}-{backfill_id}"
    path = f"/admin/backfills/{backfill_id}/{action}"
    event = api_event(
        "POST",
        path,
        body=body or {"reason": "checked with finance"},
        path_parameters={"backfill_id": backfill_id},
        headers={"Idempotency-Key": key},
    )
    status, answer, _ = call(handler(), event)
    return status, answer


def read(path: str, **params: str) -> tuple[int, Any]:
    status, answer, _ = call(handler(), api_event("GET", path, path_parameters=params or None))
    return status, answer


def billed_days(world: World, monkeypatch: Any, calls_per_day: list[int]) -> None:
    """acme subscribed at START with ``calls_per_day[d]`` calls at hour 2 of day d, each day billed and
    finalized (daily windows)."""
    world.subscribe("acme")
    for d, n in enumerate(calls_per_day):
        world.usage("acme", START + day(d, 2), n)
    for d in range(len(calls_per_day) + 1):
        at = START + day(d, 3)
        schedule(world, at)
        work(world, at, monkeypatch)
    schedule(world, START + day(len(calls_per_day), 5))  # finalizes the last draft


def usage_totals(world: World, customer: str = "acme") -> dict[str, int]:
    """What the customer's usage invoices carry, by period start: their lines' amounts, adjustments
    included where they were billed (by the period they correct)."""
    totals: dict[str, int] = {}
    for invoice in world.invoices(customer):
        for line in invoice["lines"]:
            if line["kind"] == "usage":
                totals[invoice["period_start"]] = (
                    totals.get(invoice["period_start"], 0) + line["amount_minor"]
                )
            elif line["kind"] == "adjustment":
                period = line["period_start"]
                totals[period] = totals.get(period, 0) + line["amount_minor"]
    return totals


def live_events(
    world: World, transaction_ids: list[str], at: Any, request: str, customer: str = "acme"
) -> dict[str, int]:
    """The ingest worker counting these events as sent live (a batch of queue messages)."""
    from neruba import bootstrap, jsonutil
    from neruba.logic.ingest.worker import IngestBatch

    records = []
    for n, tx in enumerate(transaction_ids):
        event = {
            "transaction_id": tx,
            "customer_id": customer,
            "code": "api_calls",
            "timestamp": at.isoformat(),
            "client_timestamp": at.isoformat(),
            "properties": {},
        }
        body = {"v": 1, "rid": request, "i": n, "rt": at.isoformat(), "e": event}
        records.append({"messageId": f"{request}-{n}", "body": jsonutil.dumps(body)})
    batch = IngestBatch(usage=world.ctx.usage, lookup=bootstrap.ingest_worker_catalog().lookup)
    batch.begin(records)
    for record in records:
        batch.process_record(record)
    assert batch.finish() == []
    return dict(batch.outcomes)
