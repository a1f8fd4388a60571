"""What a finance reader meets in the API, with the REAL pricing engine, ledger and worker on moto:
decimals are strings, the upcoming invoice shows pending corrections, explain shows an adjustment's own
units, zero invoices are numbered, a posting's ``total_minor`` is its size, periods are UTC.

The scenario (usage-only plan at 1.00 per call, daily windows): 10 calls on day 0, billed and finalized;
3 more calls of day 0 arrive later and an operator reruns day 0's invoice: a pending correction of
+3 calls = +300, which day 1's invoice carries.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from neruba.settings import get_settings
from tests.functional.billing.conftest import START, World, ledger, subscribe_real
from tests.functional.billing.helpers import day, schedule, work
from tests.support.api import api_event


def _no_float(text: str) -> Any:
    def refuse(number: str) -> Any:
        raise AssertionError(f"a JSON number with a fraction in an answer: {number}")

    return json.loads(text, parse_float=refuse)


def _get(handler: Any, path: str, **params: str) -> tuple[int, Any]:
    response = handler(api_event("GET", path, path_parameters=params or None, scopes="read"), _context())
    return response["statusCode"], _no_float(response["body"])


def _context() -> Any:
    from tests.support.lambda_context import FakeContext

    return FakeContext()


@pytest.fixture
def billing_api(real: World, monkeypatch: Any) -> Any:
    from functions.billing_api.app import lambda_handler
    from neruba import bootstrap

    bootstrap.install(billing=real.ctx)
    return lambda_handler


@pytest.fixture
def corrected(real: World, monkeypatch: Any) -> dict[str, Any]:
    """Day 0 billed (10 calls) and finalized; 3 late calls; day 0 rerun: a pending correction."""
    from neruba.logic.billing.admin import rerun_invoice
    from neruba.models.billing import RerunRequest

    sub = subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 10)
    schedule(real, START + day(1, 1))
    work(real, START + day(1, 1), monkeypatch)
    schedule(real, START + day(1, 3))  # after the grace: finalized
    (day0,) = [i for i in real.invoices("acme") if i["kind"] == "usage"]
    assert day0["status"] == "finalized"
    real.usage("acme", START + day(0, 4), 13)
    result = rerun_invoice(
        real.ctx, day0["id"], RerunRequest(reason="late calls"), "key:test", "rerun-1", now=START + day(1, 4)
    )
    assert result["action"] == "adjustment_pending"
    return {"sub": sub, "day0": day0}


def test_invoice_answers_give_decimals_as_strings(real: World, billing_api: Any, monkeypatch: Any) -> None:
    # GIVEN day 0 billed (10 calls at 1.00)
    subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 10)
    schedule(real, START + day(1, 1))
    work(real, START + day(1, 1), monkeypatch)
    (usage,) = [i for i in real.invoices("acme") if i["kind"] == "usage"]

    # WHEN the invoice, the list and the explanation are read (no JSON number with a fraction anywhere)
    status, invoice = _get(billing_api, f"/v1/invoices/{usage['id']}", invoice_id=usage["id"])
    status_x, explained = _get(billing_api, f"/v1/invoices/{usage['id']}/explain", invoice_id=usage["id"])

    # THEN quantities, unit prices and tier amounts are decimal strings, even when whole; money is integer
    assert (status, status_x) == (200, 200)
    (line,) = invoice["lines"]
    assert (line["quantity"], line["unit_price"], line["amount_minor"]) == ("10", "1", 1000)
    (tier,) = line["tiers"]
    assert (tier["quantity"], tier["unit_price"], tier["amount"], tier["flat_fee"]) == ("10", "1", "10", "0")
    assert (line["source"]["billable_quantity"], line["source"]["free_units"]) == ("10", "0")
    (explained_line,) = explained["lines"]
    assert explained_line["aggregate"]["quantity"] == "10"
    assert explained_line["price"]["unit_price"] == "1"
    assert explained_line["price"]["tiers"][0]["amount"] == "10"


def test_the_upcoming_invoice_shows_pending_corrections(corrected: dict[str, Any]) -> None:
    # WHEN acme's upcoming invoice is read (the current period has no usage yet)
    from functions.read_api.app import lambda_handler

    status, body = _get(lambda_handler, "/v1/customers/acme/upcoming-invoice", customer_id="acme")

    # THEN the pending +300 correction of day 0 is a line of its own that says so, in the subtotal
    assert status == 200
    (window,) = body["windows"]
    (pending,) = [line for line in window["lines"] if line.get("pending")]
    assert (pending["kind"], pending["quantity"], pending["amount_minor"]) == ("adjustment", "3", 300)
    assert pending["references"]["invoice_id"] == corrected["day0"]["id"]
    assert pending["description"].startswith("Pending: ") and "next invoice" in pending["description"]
    assert window["pending_adjustments_minor"] == 300
    assert window["subtotal_minor"] == sum(line["amount_minor"] for line in window["lines"]) == 300


def test_explain_shows_an_adjustment_line_s_own_units(
    real: World, corrected: dict[str, Any], billing_api: Any, monkeypatch: Any
) -> None:
    # GIVEN day 1 billed: its invoice carries the correction
    schedule(real, START + day(2, 1))
    work(real, START + day(2, 1), monkeypatch)
    day1 = next(
        i for i in real.invoices("acme") if i["kind"] == "usage" and i["id"] != corrected["day0"]["id"]
    )

    # WHEN day 1's invoice is explained
    status, explained = _get(billing_api, f"/v1/invoices/{day1['id']}/explain", invoice_id=day1["id"])

    # THEN the adjustment line shows its own 3 calls and 300, the 3 events of difference (13 - 10) in the
    # same single hour, and what was billed and what is counted now; no tiers of the whole window
    assert status == 200
    (line,) = [x for x in explained["lines"] if x["kind"] == "adjustment"]
    assert (line["aggregate"]["quantity"], line["amount_minor"]) == ("3", 300)
    assert (line["events"], line["hours"]) == (3, 0)
    # (net_minor: after the corrected invoice's discounts, none here)
    billed = {"quantity": "10", "amount_minor": 1000, "hours": 1, "events": 10, "net_minor": 1000}
    assert line["adjustment"]["billed"] == billed
    rerated = {"quantity": "13", "amount_minor": 1300, "hours": 1, "events": 13, "net_minor": 1300}
    assert line["adjustment"]["rerated"] == rerated
    assert line["adjustment"]["difference"] == {"quantity": "3", "amount_minor": 300, "hours": 0, "events": 3}
    assert line["price"]["tiers"] == []


def test_zero_amount_invoices_are_numbered_without_gaps(real: World, monkeypatch: Any) -> None:
    # GIVEN a usage-only plan: the opening invoice is zero; day 0 has no usage (zero), day 1 has 2 calls
    subscribe_real(real, "acme")
    real.usage("acme", START + day(1, 4), 2)

    # WHEN days 0 and 1 are billed and everything is finalized
    schedule(real, START + day(2, 1))
    work(real, START + day(2, 1), monkeypatch)
    schedule(real, START + day(2, 3))

    # THEN every invoice, zero or not, is finalized with the next number: INV-000001, 2, 3
    invoices = real.invoices("acme")
    assert [(i["kind"], i["total_minor"], i["status"]) for i in invoices] == [
        ("opening", 0, "finalized"),
        ("usage", 0, "finalized"),
        ("usage", 200, "finalized"),
    ]
    assert [i["number"] for i in invoices] == ["INV-000001", "INV-000002", "INV-000003"]


def test_a_posting_s_total_is_its_size_the_sum_of_its_debits(real: World, monkeypatch: Any) -> None:
    # GIVEN a purchased grant of 500 and 12 calls billed (1200: 500 from credit, 700 receivable)
    from functions.ledger_api.app import lambda_handler
    from neruba.logic.ledger.credits import create_grant

    create_grant(
        ledger(),
        customer_id="acme",
        kind="purchased",
        amount_minor=500,
        currency="USD",
        idempotency_key="prepaid",
        actor="test",
        at=START - day(1),
    )
    subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 12)
    schedule(real, START + day(1, 1))
    work(real, START + day(1, 1), monkeypatch)

    # WHEN the ledger is read over the API
    status, body = _get(lambda_handler, "/v1/customers/acme/ledger", customer_id="acme")

    # THEN each posting's total_minor is the sum of its debits and of its credits (the invoice posting:
    # revenue 1200 credited = prepaid 500 + receivable 700 debited), not the amount due (700)
    assert status == 200
    invoice = next(p for p in body["data"] if p["source"] == "invoice")
    assert invoice["total_minor"] == 1200
    for posting in body["data"]:
        debits = sum(int(e.get("debit_minor", 0)) for e in posting["entries"])
        credits = sum(int(e.get("credit_minor", 0)) for e in posting["entries"])
        assert posting["total_minor"] == debits == credits


def test_periods_are_utc_whatever_the_customer_s_timezone(real: World) -> None:
    # GIVEN acme in New York (UTC-5 in winter, UTC-4 in summer), subscribed at 1 March 00:00 UTC; DST
    # starts in New York on 8 March 2026
    from neruba.logic.billing.upcoming import upcoming_invoice

    real.plans.update_customer("acme", {"timezone": "America/New_York"})
    sub = subscribe_real(real, "acme")

    # WHEN the upcoming invoice is rated in April (after the DST change)
    from neruba.dal.usage import UsageRepository

    now = datetime(2026, 4, 15, 12, tzinfo=UTC)
    body = upcoming_invoice(real.plans, UsageRepository(get_settings().usage_table), "acme", now=now)

    # THEN the period is [1 April 00:00 UTC, 1 May 00:00 UTC): the anchor's UTC time, no DST shift
    (window,) = body["windows"]
    assert window["subscription_id"] == sub["id"]
    assert (window["period_start"], window["period_end"]) == (
        datetime(2026, 4, 1, tzinfo=UTC).isoformat(),
        datetime(2026, 5, 1, tzinfo=UTC).isoformat(),
    )
    assert datetime.fromisoformat(window["period_start"]).utcoffset() == timedelta(0)
    # AND the API says so where the field is documented
    from neruba_tools.cli import openapi_text

    schema = json.loads(openapi_text())["components"]["schemas"]["CustomerCreate"]["properties"]["timezone"]
    assert "UTC" in schema["description"] and "does not use it" in schema["description"]
