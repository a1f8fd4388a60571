"""Stripe refunds and disputes obey the same rules as the operator's: never beyond what the charge's
payment still has refundable. An event that asks more is ``parked`` for an operator and posts nothing."""

from __future__ import annotations

from typing import Any

from tests.functional.stripe import test_end_to_end as e2e
from tests.functional.stripe.test_end_to_end import (
    CUSTOMER,
    balance,
    dispute_event,
    ledger,
    postings,
    refund_event,
    synced_and_paid,
    work_events,
)
from tests.support.stripe_events import event

finalized = e2e.finalized  # the end-to-end fixture (world and fake come from conftest)


def test_a_refund_beyond_what_the_charge_paid_is_parked_for_an_operator(
    fake: Any, finalized: list[dict[str, Any]], deliver: Any, stored: Any
) -> None:
    # GIVEN the 250 invoice paid by ch_1 (cash 1250 in all)
    synced_and_paid(fake, finalized, deliver)
    cash = balance()["paid_to_date_minor"]
    # WHEN Stripe reports refunds of 300 on ch_1, listed and as a cumulative total
    listed = refund_event("ch_1", [("re_1", 300)])
    total = event("charge.refunded", {"id": "ch_1", "object": "charge", "amount_refunded": 300})
    for sent in (listed, total):
        deliver(sent)
    work_events()
    # THEN both are parked for an operator, with the reason, and nothing was posted
    for sent in (listed, total):
        record = stored(sent["id"])
        assert (record["status"], record["outcome"]) == ("parked", "parked"), record
        assert "refund_exceeds_refundable" in record["error"] and "250" in record["error"]
        # AND the record names the customer and invoice the charge paid (the operator finds it by them)
        assert (record.get("customer_id"), record.get("invoice_id")) == (CUSTOMER, finalized[1]["id"])
    assert postings("refund") == [] and balance()["paid_to_date_minor"] == cash
    # AND a refund within what was paid still posts
    within = refund_event("ch_1", [("re_2", 250)])
    deliver(within)
    work_events()
    assert stored(within["id"])["status"] == "processed"
    assert balance()["paid_to_date_minor"] == cash - 250 and ledger().reconcile(CUSTOMER) == []


def test_a_dispute_beyond_what_is_left_after_refunds_is_parked(
    fake: Any, finalized: list[dict[str, Any]], deliver: Any, stored: Any
) -> None:
    # GIVEN ch_1 paid 250 and 100 of it refunded
    synced_and_paid(fake, finalized, deliver)
    deliver(refund_event("ch_1", [("re_1", 100)]))
    work_events()
    # WHEN a dispute of 200 is opened on ch_1 (only 150 is left), then one of 150
    too_much = dispute_event("charge.dispute.created", "dp_1", "ch_1", 200, "needs_response")
    fits = dispute_event("charge.dispute.created", "dp_2", "ch_1", 150, "needs_response")
    deliver(too_much)
    deliver(fits)
    work_events()
    # THEN the first is parked, the second holds 150
    parked = stored(too_much["id"])
    assert (parked["status"], parked["outcome"]) == ("parked", "parked")
    assert (parked.get("customer_id"), parked.get("invoice_id")) == (CUSTOMER, finalized[1]["id"])
    assert stored(fits["id"])["status"] == "processed"
    assert ledger().balances(CUSTOMER)["USD"]["disputes"] == 150
