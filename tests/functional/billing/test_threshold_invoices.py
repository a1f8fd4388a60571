"""Threshold invoicing on the real pricing engine, credits and ledger (daily windows): a threshold invoice
bills the usage of the open period when what it has not invoiced reaches the customer's threshold, and
the period-end invoice deducts exactly what the threshold invoices billed."""

from __future__ import annotations

from typing import Any

import pytest

from neruba.logic.billing.threshold_invoices import evaluate_customer
from tests.functional.billing.conftest import BASIC, START, World, assert_books_agree, ledger, make_world
from tests.functional.billing.helpers import billing_state, day, schedule, work


@pytest.fixture
def thr(aws: dict[str, str]) -> World:
    """acme invoices early at 500 minor units (50 calls of the basic plan); globex has no threshold."""
    return make_world(BASIC, {"acme": {"invoice_threshold_minor": 500}, "globex": {}})


def opened(world: World, monkeypatch: Any, customer: str = "acme") -> dict[str, Any]:
    """A subscription whose opening window is billed (its first usage period is open)."""
    sub = world.subscribe(customer)
    schedule(world, START)
    work(world, START, monkeypatch)
    assert billing_state(world, sub["id"]).next_seq == 1
    return sub


def by_kind(world: World, customer: str, kind: str) -> list[dict[str, Any]]:
    return [i for i in world.invoices(customer) if i["kind"] == kind]


def test_a_crossing_issues_one_threshold_invoice_and_the_period_end_deducts_it(
    thr: World, monkeypatch: Any
) -> None:
    # GIVEN 30 calls (300): below the threshold of 500
    sub = opened(thr, monkeypatch)
    thr.usage("acme", START + day(0, 1), 30)
    assert [e.outcome for e in evaluate_customer(thr.ctx, "acme", START + day(0, 2))] == ["below"]
    assert by_kind(thr, "acme", "threshold") == []

    # WHEN 30 more calls take what is not invoiced to 600, and the check runs (twice)
    thr.usage("acme", START + day(0, 2), 30)
    first = evaluate_customer(thr.ctx, "acme", START + day(0, 3))
    again = evaluate_customer(thr.ctx, "acme", START + day(0, 3))

    # THEN one threshold invoice of 600, finalized and numbered; the second check finds nothing to bill
    assert [e.outcome for e in first] == ["issued"]
    assert [(e.outcome, e.pending_minor) for e in again] == [("below", 0)]
    [early] = by_kind(thr, "acme", "threshold")
    assert (early["status"], early["total_minor"], early["billing_reason"]) == (
        "finalized",
        600,
        "subscription_threshold",
    )
    assert early["number"] and early["threshold"]["threshold_minor"] == 500
    assert [(line["quantity"], line["amount_minor"]) for line in early["lines"]] == [(60, 600)]

    # WHEN 25 more calls arrive and the period ends
    thr.usage("acme", START + day(0, 5), 25)
    assert [e.outcome for e in evaluate_customer(thr.ctx, "acme", START + day(0, 6))] == ["below"]
    schedule(thr, START + day(1, 1))
    work(thr, START + day(1, 1), monkeypatch)

    # THEN the period-end invoice rates the whole period (85 calls) and deducts the 600 billed early
    [usage] = by_kind(thr, "acme", "usage")
    amounts = [(line["kind"], line["amount_minor"]) for line in usage["lines"]]
    assert amounts == [("usage", 850), ("threshold_deduction", -600)]
    assert usage["subtotal_minor"] == 250
    deduction = usage["lines"][1]
    assert deduction["references"]["threshold_invoices"] == [early["id"]]
    assert early["number"] in deduction["description"]
    assert billing_state(thr, sub["id"]).next_seq == 2
    assert_books_agree(thr, "acme")


def test_a_customer_without_a_threshold_reads_only_its_customer(thr: World, monkeypatch: Any) -> None:
    opened(thr, monkeypatch, "globex")
    thr.usage("globex", START + day(0, 1), 500)
    assert evaluate_customer(thr.ctx, "globex", START + day(0, 2)) == []
    assert by_kind(thr, "globex", "threshold") == []


def test_threshold_invoices_are_taxed_and_the_period_end_takes_the_tax_off_with_the_usage(
    thr: World, monkeypatch: Any
) -> None:
    from functions.billing_api.app import lambda_handler
    from tests.support.api import api_event, call

    def put(method: str, path: str, body: dict[str, Any], key: str, **params: str) -> Any:
        headers = {"Idempotency-Key": key}
        return call(
            lambda_handler, api_event(method, path, body=body, path_parameters=params, headers=headers)
        )

    # GIVEN 20% exclusive VAT where acme is
    vat = {"display_name": "VAT", "percentage": "20", "inclusive": False, "country": "DE", "reason": "VAT"}
    assert put("POST", "/admin/tax-rates", vat, "t-1")[0] == 201
    place = {"country": "DE", "reason": "head office"}
    assert put("PUT", "/admin/customers/acme/tax-jurisdiction", place, "j-1", customer_id="acme")[0] == 200

    # WHEN 60 calls cross the threshold, 25 more follow and the period ends
    opened(thr, monkeypatch)
    thr.usage("acme", START + day(0, 2), 60)
    evaluate_customer(thr.ctx, "acme", START + day(0, 3))
    thr.usage("acme", START + day(0, 5), 25)
    schedule(thr, START + day(1, 1))
    work(thr, START + day(1, 1), monkeypatch)

    # THEN the threshold invoice is taxed (600 + 120); the period-end invoice taxes 850 and takes off
    # the 600 with its 120 (250 + 50): together 850 + 170, as without a threshold
    [early] = by_kind(thr, "acme", "threshold")
    [usage] = by_kind(thr, "acme", "usage")
    assert (early["subtotal_minor"], early["tax_minor"], early["total_minor"]) == (600, 120, 720)
    assert (usage["subtotal_minor"], usage["tax_minor"], usage["total_minor"]) == (250, 50, 300)
    balances = ledger().balances("acme")["USD"]
    assert balances["tax_payable"] == -170 and balances["revenue"] == -850
    assert_books_agree(thr, "acme")
