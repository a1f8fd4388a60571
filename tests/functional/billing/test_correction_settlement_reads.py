"""What a negative correction reads to settle (docs/billing.md, "What a settlement reads"): the invoices
that can carry a corrected line are read from the oldest corrected invoice's period on, so a customer's
older invoices cost the correction nothing, however many there are.

Two customers, the same last day (12 calls at 1.00, cancelled, the final window billed), one of them with
59 daily invoices before it; the last invoice of each is recounted as 10 calls and rerun. Requests and
items read are counted on the shared DynamoDB client (``benchmarks.billing_run.Meter``).

The one carrier outside that range, a correction invoice of an earlier period that also billed a
difference of the corrected invoice left pending, is found through the corrected invoice's adjustment
records.
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


def _left_pending(real: World, invoice: dict[str, Any]) -> None:
    """What a rerun of ``invoice`` racing its subscription's final window leaves once billing has ended:
    its difference recorded ``pending`` (the final window had read the adjustments before it was written)."""
    from neruba.dal.transaction import Transaction
    from neruba.logic.billing.adjustment_terms import adjustment_record
    from neruba.logic.billing.worker import line_deltas, rated_lines
    from neruba.timefmt import parse_ts

    ctx, sub_id = real.ctx, str(invoice["subscription_id"])
    stored = ctx.invoices.get(str(invoice["id"]))
    assert stored is not None
    window = ctx.rate_window(
        ctx.subscription(sub_id).timeline, parse_ts(stored.period_start), parse_ts(stored.period_end)
    )
    deltas = line_deltas(stored, rated_lines(window), ctx.billing.adjustments(sub_id))
    assert deltas
    now = START + day(0, 22)
    puts = [
        ctx.billing.adjustment_put_item(sub_id, adjustment_record(d, "pending", None, now)) for d in deltas
    ]
    Transaction(puts).commit()


def test_a_difference_carried_by_an_earlier_periods_correction_invoice_is_credited_there(
    real: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN acme's two daily invoices (1 call, then 12 on the final day), billing ended; a difference of
    # +3 calls on the final invoice left pending (a rerun racing the final window)
    final = _ended_after(real, "acme", 1, monkeypatch)
    (first,) = [i for i in real.invoices("acme") if i["kind"] == "usage" and i["id"] != final["id"]]
    real.usage("acme", START + day(0, 4), BILLED_CALLS + 3)
    _left_pending(real, final)
    # AND a correction of the first invoice (+2 calls) that bills it with the pending difference, on a
    # correction invoice of the first invoice's period
    real.usage("acme", START - day(1) + day(0, 4), 3)
    status, added = rerun(api, first["id"], "rr-first")
    assert status == 200 and added["correction"]["type"] == "correction_invoice", added
    carrier = real.ctx.invoices.get(str(added["correction"]["invoice_id"]))
    assert carrier is not None and carrier.period_start == first["period_start"] < final["period_start"]
    assert carrier.total_minor == (2 + 3) * PRICE
    # WHEN the final invoice's 3 calls are taken back and it is rerun
    real.usage("acme", START + day(0, 4), BILLED_CALLS)
    status, taken = rerun(api, final["id"], "rr-final")
    # THEN the credit note credits the correction invoice that carries them (the newest carrier), although
    # its period starts before the corrected invoice's
    assert status == 200, taken
    notes = taken["correction"]["credit_notes"]
    assert [(n["invoice_id"], n["amount_minor"]) for n in notes] == [(carrier.id, 3 * PRICE)], notes


def test_the_range_of_a_customers_invoices_is_read_page_by_page(real: World) -> None:
    from neruba.dal.transaction import Transaction

    # GIVEN 130 daily invoices of one customer (a page of the list holds 100), and one of another
    first = START - day(130)
    docs = [
        {"id": f"in_range_{n:03d}", "customer_id": "acme", "kind": "usage", "status": "finalized",
         "currency": "USD", "period_start": (first + day(n)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
         "period_end": (first + day(n + 1)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"), "lines": []}
        for n in range(130)
    ]  # fmt: skip
    docs.append({**docs[-1], "id": "in_range_other", "customer_id": "globex"})
    for doc in docs:
        Transaction([real.ctx.invoices.put_item(doc, START)]).commit()
    # WHEN the invoices from day 20 on are read, and all of them
    since = docs[20]["period_start"][:10]
    ranged = real.ctx.invoices.of_customer("acme", since)
    every = real.ctx.invoices.of_customer("acme")
    # THEN the range is the 110 invoices of those days, newest first, over two pages; without a bound, all
    assert [i.id for i in ranged] == [d["id"] for d in reversed(docs[20:130])]
    assert len(every) == 130 and {i.id for i in every} >= {i.id for i in ranged}
