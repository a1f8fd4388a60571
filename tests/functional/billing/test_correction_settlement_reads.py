"""What a negative correction reads to settle (docs/billing.md, "What a settlement reads"): the invoices
that can carry a corrected line are read from the oldest corrected invoice's period on, so a customer's
older invoices cost the correction nothing, however many there are.

Two customers, the same last day (12 calls at 1.00, cancelled, the final window billed), one of them with
59 daily invoices before it; the last invoice of each is recounted as 10 calls and rerun. Requests and
items read are counted on the shared DynamoDB client (``benchmarks.billing_run.Meter``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.functional.billing.conftest import START, World, subscribe_real
from tests.functional.billing.helpers import billing_state, day, schedule, work
from tests.functional.billing.test_real_correction import BILLED_CALLS, PRICE, api, rerun

__all__ = ["api"]  # the fixture, used by name

OLDER = 59  # daily invoices before the corrected one


def _ended_after(real: World, customer: str, days: int, monkeypatch: Any) -> dict[str, Any]:
    """``customer`` subscribed ``days`` days before START (a call a day), 12 calls on START's day, then
    cancelled and its final window billed; the final invoice."""
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    first: datetime = START - day(days)
    sub = subscribe_real(real, customer, first)
    for n in range(days):
        real.usage(customer, first + day(n, 4), 1)
    real.usage(customer, START + day(0, 4), BILLED_CALLS)
    cancel(real.plans, sub["id"], Cancellation(at_period_end=False), now=START + day(0, 20))
    schedule(real, START + day(0, 21))
    work(real, START + day(0, 21), monkeypatch)
    schedule(real, START + day(0, 23))
    assert billing_state(real, sub["id"]).status == "ended"
    invoices = real.invoices(customer)
    assert len([i for i in invoices if i["kind"] == "usage"]) == days + 1
    final = invoices[-1]
    assert (final["status"], final["total_minor"]) == ("finalized", BILLED_CALLS * PRICE)
    return final


def _reads_of_rerun(api: Any, invoice_id: str, key: str) -> dict[str, Any]:
    """Rerun ``invoice_id``: the DynamoDB requests it sent and items it read, and its answer."""
    from benchmarks.billing_run import Meter
    from neruba.dal.clients import client

    meter = Meter(main=True)
    meter.attach(client("dynamodb"))
    try:
        status, answer = rerun(api, invoice_id, key)
    finally:
        meter.detach(client("dynamodb"))
    assert status == 200, answer
    return {**meter.snapshot(), "answer": answer}


def test_a_corrections_reads_do_not_grow_with_the_customers_older_invoices(
    real: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN globex with its one daily invoice and acme with 59 older daily invoices before the same one
    short = _ended_after(real, "globex", 0, monkeypatch)
    long = _ended_after(real, "acme", OLDER, monkeypatch)
    # WHEN the last invoice of each is recounted as 10 calls and rerun
    real.usage("globex", START + day(0, 4), 10)
    real.usage("acme", START + day(0, 4), 10)
    few = _reads_of_rerun(api, short["id"], "rr-short")
    many = _reads_of_rerun(api, long["id"], "rr-long")
    # THEN each is settled the same way: a credit note of the 2 calls against the corrected invoice
    for reads, final in ((few, short), (many, long)):
        correction = reads["answer"]["correction"]
        assert [(n["invoice_id"], n["amount_minor"]) for n in correction["credit_notes"]] == [
            (final["id"], 2 * PRICE)
        ], correction
        assert correction["invoice_id"] is None
    # AND acme's correction sends the same requests and reads the same items as globex's: none of its 59
    # older invoices is read
    assert many["requests"] == few["requests"]
    assert many["items_read"] == few["items_read"], (many["items_read"], few["items_read"])
