"""Corrections of usage a credit grant paid (docs/billing.md, "Usage a credit grant paid, corrected"): a
negative difference gives back money first (what credit notes or a lower invoice can take), then the
grants that paid the corrected line, in reverse of their application order, in the same transaction as
the write carrying the difference; never receivable credit for usage a grant paid. Real pricing (1.00
per API call, daily windows)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.functional.billing.conftest import START, World, assert_books_agree, ledger, subscribe_real
from tests.functional.billing.helpers import day, schedule, work
from tests.functional.billing.test_event_void_billing import _bill, _events, _explain, _void
from tests.functional.billing.test_negative_final_invoice import _credit_notes, _remaining
from tests.functional.billing.test_real_correction import api, rerun

__all__ = ["api"]
FAR = datetime(2099, 1, 1, tzinfo=UTC)  # the ledger compares expiry with the real clock too


def _grant(key: str, kind: str, amount: int, expires_at: datetime = FAR) -> str:
    from neruba.logic.ledger.credits import create_grant

    grant, _ = create_grant(
        ledger(), customer_id="acme", kind=kind, amount_minor=amount, currency="USD",  # type: ignore[arg-type]
        idempotency_key=key, actor="test", at=START - day(1), expires_at=expires_at,
    )  # fmt: skip
    return grant.grant_id


def _remaining_of(grant_id: str) -> int:
    grant = ledger().grant(grant_id)
    assert grant is not None
    return int(grant.remaining_minor)


def _usage(real: World, d: int) -> dict[str, Any]:
    from neruba.timefmt import ts

    (found,) = [
        i for i in real.invoices("acme") if i["kind"] == "usage" and i["period_start"] == ts(START + day(d))
    ]
    return found


def _balance(key: str) -> int:
    return int(ledger().balances("acme")["USD"].get(key, 0))


def _day0_paid_by(
    real: World, monkeypatch: Any, *grants: tuple[str, str, int]
) -> tuple[dict[str, Any], list[str]]:
    """Grants made, then day 0 billed 4 calls (400) and finalized, the grants paying what they can."""
    ids = [_grant(key, kind, amount) for key, kind, amount in grants]
    subscribe_real(real, "acme")
    _events("a", "b", "c", "d", at=START + day(0, 4))
    _bill(real, START + day(1, 1), monkeypatch)
    schedule(real, START + day(1, 3))
    return _usage(real, 0), ids


def test_a_window_below_zero_gives_back_to_the_grant_that_paid_the_corrected_usage(
    real: World, monkeypatch: Any
) -> None:
    # GIVEN day 0 (400) paid whole by a promotional grant of 400
    first, (grant_id,) = _day0_paid_by(real, monkeypatch, ("g1", "promotional", 400))
    assert (first["credits_applied_minor"], first["total_minor"], _remaining_of(grant_id)) == (400, 0, 0)
    # AND three of its calls voided, day 1 with one call: day 1 nets 100 - 300
    for n, tx in enumerate("abc"):
        assert _void(tx, START + day(1, 4), f"v{n}")["correction"] == "completed"
    _events("e", at=START + day(1, 2))

    # WHEN day 1 is billed
    _bill(real, START + day(2, 1), monkeypatch)

    # THEN the grant gets the 300 back; day 1 bills its own call only, paid by what the grant got back;
    # no receivable credit
    second = _usage(real, 1)
    assert [(line["kind"], line["amount_minor"]) for line in second["lines"]] == [("usage", 100)]
    assert (second["credits_applied_minor"], second["total_minor"]) == (100, 0)
    assert _remaining_of(grant_id) == 200
    assert _balance("receivable") == 0
    assert _credit_notes(real, first["id"]) == []
    # AND day 1's invoice names what the grant got back and from which invoice
    (restored,) = second["grant_restorations"]
    assert (restored["invoice_id"], restored["grant_id"], restored["amount_minor"], restored["closed"]) == (
        first["id"], grant_id, 300, None,
    )  # fmt: skip
    # AND the books: the promotional expense reversed as the invoice posting recorded it
    assert _balance("promotional_credit_expense") == 400 - 300 + 100
    assert _balance(f"prepaid_credit#{grant_id}") == -200
    (posting,) = [p for p in ledger().postings("acme", 100)[0] if p.reason == "credit_grant_restored"]
    assert (posting.metadata["invoice_id"], posting.metadata["grant_id"]) == (first["id"], grant_id)
    assert_books_agree(real, "acme")
    # AND explain shows it both ways: day 0's line names the grant, the amount and the posting; day 1
    # names what its difference gave back
    (line,) = [line for line in _explain(first["id"])["lines"] if line["kind"] == "usage"]
    (given,) = line["grant_restorations"]
    assert (given["grant_id"], given["amount_minor"], given["source_id"]) == (grant_id, 300, second["id"])
    assert given["posting_id"] == posting.posting_id and posting.posting_id in line["postings"]
    assert [r["amount_minor"] for r in _explain(second["id"])["grant_restorations"]] == [300]


def test_a_window_staying_above_zero_gives_the_grants_part_back_to_the_grant_not_as_money(
    real: World, monkeypatch: Any
) -> None:
    # GIVEN day 0 paid by a purchased grant of 400, then two calls voided and day 1 with three calls
    _first, (grant_id,) = _day0_paid_by(real, monkeypatch, ("g1", "purchased", 400))
    for n, tx in enumerate("ab"):
        assert _void(tx, START + day(1, 4), f"v{n}")["correction"] == "completed"
    _events("e", "f", "g", at=START + day(1, 2))

    # WHEN day 1 is billed (300 - 200 would stay above zero)
    _bill(real, START + day(2, 1), monkeypatch)

    # THEN the grant gets 200 back (not 100 asked for 300 of usage), and what it got back pays day 1's
    # own usage in the same window: 200 of the 300 by the grant, 100 in money
    second = _usage(real, 1)
    assert [(line["kind"], line["amount_minor"]) for line in second["lines"]] == [("usage", 300)]
    assert (second["credits_applied_minor"], second["total_minor"]) == (200, 100)
    assert [r["amount_minor"] for r in second["grant_restorations"]] == [200]
    assert _remaining_of(grant_id) == 0
    assert _balance("receivable") == 100
    assert _balance("promotional_credit_expense") == 0
    assert _balance(f"prepaid_credit#{grant_id}") == 0
    assert_books_agree(real, "acme")


def test_partly_money_partly_grant_gives_the_money_back_first(real: World, monkeypatch: Any) -> None:
    # GIVEN day 0 (400) paid 250 by a grant, 150 left to pay
    first, (grant_id,) = _day0_paid_by(real, monkeypatch, ("g1", "promotional", 250))
    assert (first["credits_applied_minor"], first["total_minor"]) == (250, 150)
    # AND three calls voided (-300), one call on day 1: money first (150 by a credit note), then 150
    # to the grant, of which day 1's call takes 100 again
    for n, tx in enumerate("abc"):
        assert _void(tx, START + day(1, 4), f"v{n}")["correction"] == "completed"
    _events("e", at=START + day(1, 2))

    _bill(real, START + day(2, 1), monkeypatch)

    (note,) = _credit_notes(real, first["id"])
    assert note["amount_minor"] == 150
    assert _remaining_of(grant_id) == 50
    second = _usage(real, 1)
    assert (second["credits_applied_minor"], second["total_minor"]) == (100, 0)
    assert [r["amount_minor"] for r in second["grant_restorations"]] == [150]
    remaining = _remaining(real)
    assert remaining[first["id"]] == 0
    assert _balance("receivable") == 0 == sum(remaining.values())
    assert_books_agree(real, "acme")


def test_two_grants_get_back_in_reverse_of_their_application_order(real: World, monkeypatch: Any) -> None:
    # GIVEN day 0 paid 300 by g1 (applied first: it expires first) and 100 by g2
    g1 = _grant("g1", "promotional", 300, expires_at=datetime(2098, 1, 1, tzinfo=UTC))
    g2 = _grant("g2", "purchased", 500)
    subscribe_real(real, "acme")
    _events("a", "b", "c", "d", at=START + day(0, 4))
    _bill(real, START + day(1, 1), monkeypatch)
    schedule(real, START + day(1, 3))
    assert (_remaining_of(g1), _remaining_of(g2)) == (0, 400)
    for n, tx in enumerate("abc"):
        assert _void(tx, START + day(1, 4), f"v{n}")["correction"] == "completed"

    _bill(real, START + day(2, 1), monkeypatch)  # day 1 has no usage: -300 is all grants

    # THEN g2 (applied last) gets its 100 back first, then g1 200
    assert (_remaining_of(g1), _remaining_of(g2)) == (200, 500)
    assert _balance("receivable") == 0
    assert_books_agree(real, "acme")


def test_an_expired_grant_is_given_back_and_expired_at_once(real: World, monkeypatch: Any) -> None:
    from neruba.logic.ledger.credits import close_remainder

    _first, (grant_id,) = _day0_paid_by(real, monkeypatch, ("g1", "purchased", 600))
    grant = ledger().grant(grant_id)
    assert grant is not None and grant.remaining_minor == 200
    close_remainder(ledger(), grant, "expired", idempotency_key="expiry:x", actor="test", source="expiry")
    for n, tx in enumerate("ab"):
        assert _void(tx, START + day(1, 4), f"v{n}")["correction"] == "completed"

    _bill(real, START + day(2, 1), monkeypatch)

    # THEN nothing cash-like: the 200 goes back to the grant and lapses at once (breakage), the grant
    # stays expired at 0, and the receivable is not lowered
    expired = ledger().grant(grant_id)
    assert expired is not None and (expired.status, expired.remaining_minor) == ("expired", 0)
    assert _balance("receivable") == 0
    assert _balance("breakage") == -400
    (restored,) = _usage(real, 1)["grant_restorations"]
    assert (restored["amount_minor"], restored["closed"]) == (200, "expired")
    assert_books_agree(real, "acme")


def test_a_correction_after_the_end_gives_back_to_the_grant(real: World, api: Any, monkeypatch: Any) -> None:
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    # GIVEN day 0 paid by a grant, the subscription ended, then two calls voided and day 0 rerun
    first, (grant_id,) = _day0_paid_by(real, monkeypatch, ("g1", "promotional", 400))
    sub_id = str(real.subscriptions[0]["id"])
    cancel(real.plans, sub_id, Cancellation(at_period_end=False), now=START + day(1, 5))
    _bill(real, START + day(1, 6), monkeypatch)
    schedule(real, START + day(1, 8))
    assert _void("a", START + day(1, 9), "v1")["correction"] == "completed"
    assert _void("b", START + day(1, 9), "v2")["correction"] == "completed"

    status, taken = rerun(api, first["id"], "rr")

    # THEN no credit_note invoice and no receivable credit: the grant gets the 200 back
    assert status == 200, taken
    assert taken["action"] == "correction_invoiced", taken
    correction = taken["correction"]
    assert (correction["type"], correction["invoice_id"], correction["credit_notes"]) == (
        "grant_restoration", None, []
    )  # fmt: skip
    (restored,) = correction["grant_restorations"]
    assert (restored["invoice_id"], restored["grant_id"], restored["amount_minor"]) == (
        first["id"],
        grant_id,
        200,
    )
    assert _remaining_of(grant_id) == 200
    assert _balance("receivable") == 0
    assert [i["kind"] for i in real.invoices("acme")].count("credit_note") == 0
    # AND a retried rerun (same key) answers the same; another gives nothing back again
    assert rerun(api, first["id"], "rr")[1] == taken
    status, again = rerun(api, first["id"], "rr2")
    assert (status, again["action"]) == (200, "unchanged"), again
    assert _remaining_of(grant_id) == 200
    assert_books_agree(real, "acme")


def test_a_window_killed_after_its_transaction_is_redelivered_and_restores_once(
    real: World, monkeypatch: Any
) -> None:
    from neruba.logic.billing import worker
    from neruba.logic.billing.worker import process_job
    from neruba.models.billing import BillingJob
    from tests.functional.billing.helpers import queued

    _first, (grant_id,) = _day0_paid_by(real, monkeypatch, ("g1", "promotional", 400))
    for n, tx in enumerate("abc"):
        assert _void(tx, START + day(1, 4), f"v{n}")["correction"] == "completed"
    now = START + day(2, 1)
    schedule(real, now)
    sub_id = str(real.subscriptions[0]["id"])
    (body,) = [b for b in queued(real.billing_queue) if b.get("subscription_id") == sub_id]
    job = BillingJob.model_validate(body)
    # WHEN the first attempt is killed before its transaction, then after it (before the SQS delete)
    commit = worker.commit
    killed: list[str] = []

    def killed_before(unit: Any) -> None:
        if not killed:
            killed.append("before")
            raise RuntimeError("killed")
        commit(unit)

    monkeypatch.setattr(worker, "commit", killed_before)
    with pytest.raises(RuntimeError):
        process_job(real.ctx, job, now)
    assert _remaining_of(grant_id) == 0
    assert len(process_job(real.ctx, job, now).invoiced) == 1
    assert process_job(real.ctx, job, now).invoiced == []  # redelivered after the commit
    work(real, now, monkeypatch)
    # THEN the grant got its 300 back once
    assert _remaining_of(grant_id) == 300
    assert len([p for p in ledger().postings("acme", 100)[0] if p.reason == "credit_grant_restored"]) == 1
    assert_books_agree(real, "acme")


def test_the_upcoming_invoice_shows_what_the_grant_will_get_back(real: World, monkeypatch: Any) -> None:
    from functions.read_api.app import lambda_handler
    from neruba import bootstrap
    from tests.support.api import api_event, call

    first, (grant_id,) = _day0_paid_by(real, monkeypatch, ("g1", "promotional", 400))
    for n, tx in enumerate("ab"):
        assert _void(tx, START + day(1, 4), f"v{n}")["correction"] == "completed"
    bootstrap.install(billing=real.ctx)
    path = "/v1/customers/acme/upcoming-invoice"
    status, body, _ = call(
        lambda_handler, api_event("GET", path, path_parameters={"customer_id": "acme"}, scopes="read")
    )
    assert status == 200, body
    (window,) = body["windows"]
    assert [line for line in window["lines"] if line["kind"] == "adjustment"] == []
    (restored,) = window["grant_restorations"]
    assert (restored["invoice_id"], restored["grant_id"], restored["amount_minor"]) == (
        first["id"],
        grant_id,
        200,
    )
    assert _remaining_of(grant_id) == 0  # the preview wrote nothing


def test_a_window_consuming_the_grant_it_gives_back_to_moves_it_once(real: World, monkeypatch: Any) -> None:
    # GIVEN a grant of 500 that paid day 0 (400), 100 left; two calls voided, day 1 with three calls
    _first, (grant_id,) = _day0_paid_by(real, monkeypatch, ("g1", "promotional", 500))
    assert _remaining_of(grant_id) == 100
    for n, tx in enumerate("ab"):
        assert _void(tx, START + day(1, 4), f"v{n}")["correction"] == "completed"
    _events("e", "f", "g", at=START + day(1, 2))

    # WHEN day 1 is billed: it gives 200 back and consumes the 100 left plus the 200 it gave back, one
    # update of the grant
    _bill(real, START + day(2, 1), monkeypatch)

    second = _usage(real, 1)
    assert (second["credits_applied_minor"], second["total_minor"]) == (300, 0)
    assert _remaining_of(grant_id) == 0
    assert [r["amount_minor"] for r in second["grant_restorations"]] == [200]
    assert _balance("promotional_credit_expense") == 400 + 300 - 200
    assert _balance("receivable") == 0
    assert_books_agree(real, "acme")
    # AND explain shows both: what the window gave back, and what the grant paid of its usage
    explained = _explain(second["id"])
    assert [r["amount_minor"] for r in explained["grant_restorations"]] == [200]
    assert sum(a["amount_minor"] for a in second["applications"] if a["grant_id"] == grant_id) == 300


def test_the_final_window_uses_the_credit_it_gives_back(real: World, monkeypatch: Any) -> None:
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    # GIVEN a promotional grant of 500 that paid day 0 (400), 100 left; two of day 0's calls voided,
    # three calls on day 1, then the subscription cancelled at once
    first, (grant_id,) = _day0_paid_by(real, monkeypatch, ("g1", "promotional", 500))
    assert _remaining_of(grant_id) == 100
    for n, tx in enumerate("ab"):
        assert _void(tx, START + day(1, 4), f"v{n}")["correction"] == "completed"
    _events("e", "f", "g", at=START + day(1, 2))
    cancel(
        real.plans, str(real.subscriptions[0]["id"]), Cancellation(at_period_end=False), now=START + day(1, 5)
    )

    # WHEN the final window is billed
    _bill(real, START + day(1, 6), monkeypatch)

    # THEN the 200 the grant gets back pays the window's own usage with the 100 left: nothing in money,
    # and no credit stranded on a grant of an ended subscription
    final = _usage(real, 1)
    assert [(line["kind"], line["amount_minor"]) for line in final["lines"]] == [("usage", 300)]
    assert (final["subtotal_minor"], final["credits_applied_minor"], final["total_minor"]) == (300, 300, 0)
    (restored,) = final["grant_restorations"]
    assert (restored["invoice_id"], restored["grant_id"], restored["amount_minor"]) == (
        first["id"],
        grant_id,
        200,
    )
    assert _remaining_of(grant_id) == 0
    assert _balance("receivable") == 0
    assert _balance(f"prepaid_credit#{grant_id}") == 0
    assert _balance("promotional_credit_expense") == 400 + 300 - 200
    assert_books_agree(real, "acme")


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_rerun_after_the_end_killed_around_its_commit_gives_back_once(
    real: World, api: Any, monkeypatch: Any, when: str
) -> None:
    from neruba.logic.billing import admin
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    first, (grant_id,) = _day0_paid_by(real, monkeypatch, ("g1", "purchased", 400))
    cancel(
        real.plans, str(real.subscriptions[0]["id"]), Cancellation(at_period_end=False), now=START + day(1, 5)
    )
    _bill(real, START + day(1, 6), monkeypatch)
    schedule(real, START + day(1, 8))
    assert _void("a", START + day(1, 9), "v1")["correction"] == "completed"
    commit = admin.commit
    killed: list[str] = []

    def killed_once(unit: Any) -> None:
        if not killed:
            killed.append(when)
            if when == "after":
                commit(unit)
            raise RuntimeError("killed")
        commit(unit)

    monkeypatch.setattr(admin, "commit", killed_once)
    # WHEN the rerun's process is killed before (nothing written) or after its transaction committed
    status, _ = rerun(api, first["id"], "rr")  # the handler answers 500 for the killed process
    assert (status, killed) == (500, [when])
    assert _remaining_of(grant_id) == (100 if when == "after" else 0)
    # THEN the client's retry with the same key gives back once
    status, taken = rerun(api, first["id"], "rr")
    assert status == 200, taken
    assert _remaining_of(grant_id) == 100
    assert len([p for p in ledger().postings("acme", 100)[0] if p.reason == "credit_grant_restored"]) == 1
    assert rerun(api, first["id"], "rr2")[1]["action"] == "unchanged"
    assert_books_agree(real, "acme")


def _taxed(real: World, inclusive: bool) -> None:
    """acme's invoices taxed at 19% (exclusive or inclusive), its jurisdiction DE."""
    from neruba.logic.billing import coupons
    from neruba.models.discounts import JurisdictionSet, TaxRateCreate

    body = {
        "display_name": "VAT",
        "percentage": "19",
        "inclusive": inclusive,
        "country": "DE",
        "reason": "rule",
    }
    coupons.create_tax_rate(real.ctx, TaxRateCreate.model_validate(body), "key:p", "txr-vat")
    where = JurisdictionSet.model_validate({"country": "DE", "reason": "rule"})
    coupons.set_jurisdiction(real.ctx, "acme", where, "key:p", "j-acme")


def _tax19(amount: int, inclusive: bool) -> int:
    """The tax 19% gives ``amount`` (exclusive: on top; inclusive: contained), half-up once."""
    from decimal import ROUND_HALF_UP, Decimal

    exact = Decimal(amount) * 19 / (119 if inclusive else 100)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _tax_of(invoice: dict[str, Any]) -> int:
    return int(invoice.get("tax_minor") or 0) + int(invoice.get("tax_included_minor") or 0)


@pytest.mark.parametrize("inclusive", [False, True], ids=["exclusive", "inclusive"])
@pytest.mark.parametrize("voided", [4, 3], ids=["whole", "part"])
def test_the_tax_of_grant_paid_usage_corrected_is_given_back(
    real: World, monkeypatch: Any, inclusive: bool, voided: int
) -> None:
    # GIVEN 19% tax, day 0 billed 4 calls (400 and its tax) paid by a purchased grant as far as credit pays
    _taxed(real, inclusive)
    first, (grant_id,) = _day0_paid_by(real, monkeypatch, ("g1", "purchased", 1000))
    assert _tax_of(first) == _tax19(400, inclusive)
    paid = int(first["credits_applied_minor"])
    assert paid == 400  # the line's amount (exclusive: net of tax, the tax owed in money; inclusive: all)
    # AND ``voided`` of its calls voided, day 1 without usage: day 1 goes below zero (or to 0)
    for n, tx in enumerate("abcd"[:voided]):
        assert _void(tx, START + day(1, 4), f"v{n}")["correction"] == "completed"

    # WHEN day 1 is billed
    _bill(real, START + day(2, 1), monkeypatch)

    # THEN the grant gets back what it paid of the voided usage
    given = 100 * voided
    assert _remaining_of(grant_id) == 1000 - 400 + given
    # AND the tax of the voided usage is no longer owed: tax_payable is what the surviving calls bear
    surviving = 100 * (4 - voided)
    assert -_balance("tax_payable") == _tax19(surviving, inclusive)
    # AND the customer gets back in money the tax they paid in money (exclusive: the voided usage's tax);
    # for inclusive tax the grant paid it, so nothing comes back as money
    money_back = 0 if inclusive else _tax19(400, False) - _tax19(surviving, False)
    assert sum(n["amount_minor"] for n in _credit_notes(real, first["id"])) == money_back
    second = _usage(real, 1)
    assert second["total_minor"] == 0
    # (day 0 was not paid: the note lowers what it asks, to the tax of the surviving calls)
    asks = 0 if inclusive else _tax19(surviving, False)
    assert _remaining(real)[first["id"]] == asks == _balance("receivable")
    # AND the restoration shows the tax of the part given back
    restored = second["grant_restorations"]
    assert sum(r["amount_minor"] for r in restored) == given
    assert sum(r["tax_minor"] for r in restored) == _tax19(400, inclusive) - _tax19(surviving, inclusive)
    assert_books_agree(real, "acme")


@pytest.mark.parametrize(
    ("grant", "inclusive"),
    [(250, False), (400, False), (400, True)],  # a part paid with inclusive tax: the test above
    ids=["part-exclusive", "whole-exclusive", "whole-inclusive"],
)
def test_the_tax_of_a_grant_paid_line_corrected_on_a_window_above_zero(
    real: World, monkeypatch: Any, inclusive: bool, grant: int
) -> None:
    # GIVEN 19% tax, day 0 (4 calls) paid 250 (or all 400) by a grant, two calls voided, day 1 with three
    _taxed(real, inclusive)
    _first, (grant_id,) = _day0_paid_by(real, monkeypatch, ("g1", "promotional", grant))
    for n, tx in enumerate("ab"):
        assert _void(tx, START + day(1, 4), f"v{n}")["correction"] == "completed"
    _events("e", "f", "g", at=START + day(1, 2))

    # WHEN day 1 is billed (it stays above zero)
    _bill(real, START + day(2, 1), monkeypatch)

    # THEN money first: day 1 is lowered by what was paid in money of the line (150 of 400, with its
    # tax), the grant gets the rest back; the tax of every voided call is no longer owed (exclusive: the
    # grant's part's tax lowers day 1 too, a line of nothing but tax when the grant paid the whole line);
    # what the grant got back pays day 1's own usage at once
    back = 200 - (400 - grant)
    assert _remaining_of(grant_id) == 0
    assert _usage(real, 1)["credits_applied_minor"] == back
    assert -_balance("tax_payable") == _tax19(200, inclusive) + _tax19(300, inclusive)
    second = _usage(real, 1)
    restored = second["grant_restorations"]
    assert sum(r["amount_minor"] for r in restored) == back
    assert _balance("receivable") == sum(_remaining(real).values())
    assert_books_agree(real, "acme")


def test_the_tax_of_grant_paid_usage_corrected_after_the_end_goes_back_by_a_credit_note(
    real: World, api: Any, monkeypatch: Any
) -> None:
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    # GIVEN 19% exclusive tax, day 0 (400 + 76) paid 400 by a grant and 76 owed, the subscription ended
    _taxed(real, False)
    first, (grant_id,) = _day0_paid_by(real, monkeypatch, ("g1", "promotional", 400))
    sub_id = str(real.subscriptions[0]["id"])
    cancel(real.plans, sub_id, Cancellation(at_period_end=False), now=START + day(1, 5))
    _bill(real, START + day(1, 6), monkeypatch)
    schedule(real, START + day(1, 8))
    assert _void("a", START + day(1, 9), "v1")["correction"] == "completed"
    assert _void("b", START + day(1, 9), "v2")["correction"] == "completed"

    # WHEN day 0 is rerun (twice with one key)
    status, taken = rerun(api, first["id"], "rr")
    assert status == 200, taken
    assert rerun(api, first["id"], "rr")[1] == taken

    # THEN the grant gets the 200 back, and one credit note of day 0 gives back the 38 of tax paid in money
    assert _remaining_of(grant_id) == 200
    (note,) = _credit_notes(real, first["id"])
    assert note["amount_minor"] == 38  # nothing but tax: the grant paid the 200
    assert [i["kind"] for i in real.invoices("acme")].count("credit_note") == 0
    (restored,) = taken["correction"]["grant_restorations"]
    assert (restored["amount_minor"], restored["tax_minor"], restored["tax_included_minor"]) == (200, 38, 0)
    assert -_balance("tax_payable") == 38 == _remaining(real)[first["id"]] == _balance("receivable")
    # AND another rerun finds nothing left
    status, again = rerun(api, first["id"], "rr2")
    assert (status, again["action"]) == (200, "unchanged"), again
    assert -_balance("tax_payable") == 38
    assert_books_agree(real, "acme")


def test_credit_that_paid_a_later_adjustment_of_the_line_is_given_back_to_its_grant(
    real: World, monkeypatch: Any
) -> None:
    # GIVEN day 0 (4 calls, 400) paid by a grant
    first, (grant_id,) = _day0_paid_by(real, monkeypatch, ("g1", "purchased", 1000))
    # AND a late call of day 0 billed on day 1 (+100 adjustment, day 1 has no usage), the grant paying it
    _events("e", at=START + day(0, 5))
    _bill(real, START + day(2, 1), monkeypatch)
    second = _usage(real, 1)
    assert [line["amount_minor"] for line in second["lines"] if line["kind"] == "adjustment"] == [100]
    assert (second["credits_applied_minor"], _remaining_of(grant_id)) == (100, 500)

    # WHEN three of day 0's calls, the late one among them, are voided and day 2 (no usage) carries -300
    for n, tx in enumerate("abe"):
        assert _void(tx, START + day(2, 4), f"v{n}")["correction"] == "completed"
    _bill(real, START + day(3, 1), monkeypatch)

    # THEN the grant paid all of day 0's line, its adjustment too: it gets the 300 back, and no money moves
    # for usage the grant paid
    assert _remaining_of(grant_id) == 800
    assert _credit_notes(real, first["id"]) == [] == _credit_notes(real, second["id"])
    third = _usage(real, 2)
    assert third["total_minor"] == 0
    assert _balance("receivable") == 0 == sum(_remaining(real).values())
    restored = third["grant_restorations"]
    assert [(r["invoice_id"], r["grant_id"]) for r in restored] == [(first["id"], grant_id)]
    assert sum(r["amount_minor"] for r in restored) == 300
    assert_books_agree(real, "acme")


def test_a_window_applying_the_credit_it_gives_back_is_cancelled_by_a_consumption_meanwhile(
    real: World, monkeypatch: Any
) -> None:
    from neruba.dal.transaction import Transaction
    from neruba.domain.credits import CreditApplication
    from neruba.logic.billing import worker
    from neruba.logic.billing.worker import RetryableBillingError, process_job
    from neruba.models.billing import BillingJob
    from tests.functional.billing.helpers import queued

    # GIVEN the example above (grant of 500, 100 left after day 0; -200 voided, day 1 +300)
    _first, (grant_id,) = _day0_paid_by(real, monkeypatch, ("g1", "promotional", 500))
    for n, tx in enumerate("ab"):
        assert _void(tx, START + day(1, 4), f"v{n}")["correction"] == "completed"
    _events("e", "f", "g", at=START + day(1, 2))
    now = START + day(2, 1)
    schedule(real, now)
    sub_id = str(real.subscriptions[0]["id"])
    (body,) = [b for b in queued(real.billing_queue) if b.get("subscription_id") == sub_id]
    job = BillingJob.model_validate(body)
    # WHEN 60 of the grant's remainder is consumed elsewhere after the window read it, before it commits
    commit = worker.commit
    raced: list[int] = []

    def consumed_meanwhile(unit: Any) -> None:
        if not raced:
            raced.append(60)
            used = [CreditApplication(grant_id, "elsewhere", 60, "promotional")]
            commit(Transaction(ledger().grant_consumption_items(used, at=now)))
        commit(unit)

    monkeypatch.setattr(worker, "commit", consumed_meanwhile)
    # THEN the window's transaction is cancelled (its grant update is conditional on the remainder as
    # read covering what it applies beyond what it gives back): nothing of it is written
    with pytest.raises(RetryableBillingError):
        process_job(real.ctx, job, now)
    assert _remaining_of(grant_id) == 40
    # AND the redelivered job decides again: the 40 left and the 200 given back pay day 1
    assert len(process_job(real.ctx, job, now).invoiced) == 1
    second = _usage(real, 1)
    assert (second["credits_applied_minor"], second["total_minor"]) == (240, 60)
    assert _remaining_of(grant_id) == 0
    assert len([p for p in ledger().postings("acme", 100)[0] if p.reason == "credit_grant_restored"]) == 1
