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
    included where they were billed (by the period they correct), less what correction credit notes gave
    back for it (``given_back``)."""
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
    for period, (amount, _tax) in given_back(world, customer).items():
        totals[period] = totals.get(period, 0) - amount
    return totals


def given_back(world: World, customer: str = "acme") -> dict[str, tuple[int, int]]:
    """Per period start, what negative adjustments gave back without a line of a later invoice: (net,
    exclusive tax). A correction's credit note counts by the period of each line it credits (the
    corrected line, or an adjustment line carrying it: the corrected period either way); the part of an
    adjustment that no line or note carries counts too, as taken back by an operator's credit note of
    the corrected line (docs/billing.md, "Negative corrections settle against what they correct"): its
    tax is what neither a line nor a note gave back of the adjustments' tax. Checked on the way: each
    note credits what it says it settles, and no line has more absorbed (net, and tax per period) than
    operators' notes credited of it."""
    invoices = [i for i in world.ctx.invoices.of_customer(customer) if i.status != "void"]
    out: dict[str, tuple[int, int]] = {}

    def add(into: dict[Any, tuple[int, int]], key: Any, amount: int, tax: int) -> None:
        was = into.get(key, (0, 0))
        into[key] = (was[0] + amount, was[1] + tax)

    settled: dict[str, int] = {}  # adjustment key -> what correction notes took for it
    goodwill: dict[tuple[str, str], tuple[int, int]] = {}  # corrected (invoice, line) -> operators' notes
    goodwill_tax: dict[str, int] = {}  # per period, the tax operators' notes gave back
    kept: dict[str, tuple[int, int]] = {}  # adjustment line id -> (amount, tax) left on invoice lines
    for invoice in invoices:
        lines = {line.line_id: line.document for line in invoice.lines}
        for line in lines.values():
            if line["kind"] == "adjustment":
                tax = int((line.get("tax") or {}).get("exclusive_minor") or 0)
                add(kept, str(line["line_id"]), int(line["amount_minor"]), tax)
        for summary in invoice.document.get("credit_notes") or []:
            note = world.ctx.billing.credit_notes.get(summary["id"])
            assert note is not None
            correction = note.get("correction")
            for credited in note["lines"]:
                carrying = lines[credited["line_id"]]
                ref = carrying.get("references") or {}
                adjusting = carrying["kind"] == "adjustment"
                corrected = (
                    (str(ref["invoice_id"]), str(ref["line_id"]))
                    if adjusting
                    else (invoice.id, carrying["line_id"])
                )
                period = str(carrying["period_start"] if adjusting else invoice.period_start)
                amount = int(credited["amount_minor"])
                tax = int((credited.get("tax") or {}).get("exclusive_minor") or 0)
                if not correction:
                    add(goodwill, corrected, amount, tax)
                    goodwill_tax[period] = goodwill_tax.get(period, 0) + tax
                else:
                    add(out, period, amount, tax)
            if correction:
                took = [(str(a["key"]), int(a["amount_minor"])) for a in correction["adjustments"]]
                assert sum(t for _, t in took) == sum(int(c["amount_minor"]) for c in note["lines"]), note
                for key, amount in took:
                    settled[key] = settled.get(key, 0) + amount
    absorbed: dict[tuple[str, str], int] = {}
    absorbing: set[str] = set()
    negative_tax: dict[str, int] = {}  # per period, the negative adjustments' tax not left on lines
    for sub in world.plans.customer_subscriptions(customer):
        for record in world.ctx.billing.adjustments(str(sub.id)):
            whole = -int(record.line["amount_minor"])
            if record.status != "applied" or whole <= 0:
                continue
            on_lines, tax_on_lines = kept.get(str(record.line["line_id"]), (0, 0))
            period = str(record.line["period_start"])
            tax = -int((record.line.get("tax") or {}).get("exclusive_minor") or 0)
            negative_tax[period] = negative_tax.get(period, 0) + tax + tax_on_lines
            rest = whole + on_lines - settled.get(record.key, 0)  # neither on a line nor on a note
            assert rest >= 0, (record, on_lines, settled.get(record.key))
            if rest:
                add(out, period, rest, 0)
                line = (record.original_invoice_id, record.original_line_id)
                absorbed[line] = absorbed.get(line, 0) + rest
                absorbing.add(period)
    for line, amount in absorbed.items():
        assert amount <= goodwill.get(line, (0, 0))[0], (line, amount, goodwill)
    for period in absorbing:
        net, tax = out[period]
        rest_tax = negative_tax[period] - tax  # the adjustments' tax no note gave back: an operator's did
        assert 0 <= rest_tax <= goodwill_tax.get(period, 0), (period, rest_tax, goodwill_tax)
        out[period] = (net, tax + rest_tax)
    return out


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
