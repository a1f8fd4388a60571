"""A correction invoice after the end applies the customer's credit as a window invoice does (docs/billing.md,
"Corrections after the end", "Credit on a correction invoice"): the same allocation and order of use, the
same conditional grant decrements, applications and postings, the same tax treatment, in the correction's
one transaction; the credit the same correction gives back to a grant pays it too. Real pricing (1.00 per
API call, daily windows), the billing API's rerun, the corrections sweep, the fake Stripe."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from neruba_tools.local.fake_stripe import FakeStripe
from tests.functional.billing.conftest import START, World, assert_books_agree, ledger, subscribe_real
from tests.functional.billing.helpers import billing_state, day, schedule
from tests.functional.billing.test_event_void_billing import _bill, _events, _void
from tests.functional.billing.test_grant_paid_corrections import (
    _balance,
    _grant,
    _remaining_of,
    _tax19,
    _taxed,
    _usage,
)
from tests.functional.billing.test_negative_final_invoice import _credit_notes
from tests.functional.billing.test_real_correction import api, explain, fake, rerun, sync_all

__all__ = ["api", "fake"]


def _ended_after_two_days(real: World, monkeypatch: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Day 0 billed 4 calls (400) and finalized; the subscription cancelled at day 1 + 5h, its final
    window (day 1, no usage) billed and finalized: billing ended. Returns (day 0, the final window)."""
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    sub = subscribe_real(real, "acme")
    _events("a", "b", "c", "d", at=START + day(0, 4))
    _bill(real, START + day(1, 1), monkeypatch)
    schedule(real, START + day(1, 3))
    cancel(real.plans, str(sub["id"]), Cancellation(at_period_end=False), now=START + day(1, 5))
    _bill(real, START + day(1, 6), monkeypatch)
    schedule(real, START + day(1, 8))
    assert billing_state(real, str(sub["id"])).status == "ended"
    return _usage(real, 0), _usage(real, 1)


def _corrections(real: World) -> list[dict[str, Any]]:
    return [i for i in real.invoices("acme") if i["kind"] == "correction"]


def _consumptions(grant_id: str) -> int:
    """The invoice postings that consumed credit of ``grant_id``."""
    found, _ = ledger().postings("acme", 100)
    return len(
        [
            p
            for p in found
            if p.reason == "invoice"
            and any(e.account == "prepaid_credit" and e.grant_id == grant_id for e in p.entries)
        ]
    )


@pytest.mark.parametrize("via", ["rerun", "sweep"])
def test_an_amend_after_the_end_moves_grant_paid_usage_without_money(
    real: World, api: Any, fake: FakeStripe, monkeypatch: Any, via: str
) -> None:
    from neruba.logic.billing.corrections import late_corrections

    # GIVEN day 0 (400) paid whole by a grant, the subscription ended after day 1
    grant_id = _grant("g1", "promotional", 400)
    first, final = _ended_after_two_days(real, monkeypatch)
    assert (first["credits_applied_minor"], first["total_minor"], _remaining_of(grant_id)) == (400, 0, 0)
    sync_all()
    # AND one of day 0's calls amended into day 1
    assert _void("a", START + day(1, 9), "v1", timestamp=START + day(1, 2))["correction"] == "completed"

    # WHEN day 0 then day 1 are corrected (reruns, or the corrections sweep: oldest period first)
    if via == "rerun":
        status, back = rerun(api, first["id"], "r0")
        assert (status, back["correction"]["type"]) == (200, "grant_restoration"), back
        status, billed = rerun(api, final["id"], "r1")
        assert (status, billed["action"]) == (200, "correction_invoiced"), billed
    else:
        issued = late_corrections(real.ctx, "acme", START + day(1, 10))
        assert [i["corrects"] for i in issued] == [first["id"], final["id"]]

    # THEN day 0's -100 goes back to the grant and pays day 1's +100: the correction invoice asks 0
    (doc,) = _corrections(real)
    assert (doc["subtotal_minor"], doc["credits_applied_minor"], doc["total_minor"]) == (100, 100, 0)
    assert [(a["grant_id"], a["amount_minor"]) for a in doc["applications"]] == [(grant_id, 100)]
    assert doc["status"] == "finalized"
    if via == "rerun":
        assert (billed["correction"]["invoice_id"], billed["correction"]["amount_minor"]) == (doc["id"], 0)
    # AND the grant's remainder is unchanged overall; no money moved, the books balance
    assert _remaining_of(grant_id) == 0
    assert _balance("receivable") == 0
    assert _balance(f"prepaid_credit#{grant_id}") == 0
    assert _balance("promotional_credit_expense") == 400
    assert _credit_notes(real, first["id"]) == []
    assert_books_agree(real, "acme")
    # AND explain of the correction invoice names the grant that paid its line
    (line,) = explain(api, doc["id"])["lines"]
    assert [(c["grant_id"], c["amount_minor"]) for c in line["credits_applied"]] == [(grant_id, 100)]
    # AND day 0's explain names what the grant got back
    (usage,) = [ln for ln in explain(api, first["id"])["lines"] if ln["kind"] == "usage"]
    assert [r["amount_minor"] for r in usage["grant_restorations"]] == [100]
    # AND Stripe gets it as a fully credited window invoice: the lines and the credit, total 0
    sync_all()
    (theirs,) = [i for i in fake.invoices.values() if i["metadata"]["neruba_invoice_id"] == doc["id"]]
    (window,) = [i for i in fake.invoices.values() if i["metadata"]["neruba_invoice_id"] == first["id"]]
    assert theirs["total"] == 0 == window["total"]
    assert theirs["status"] == window["status"]


def _pending_of_day0(real: World, first: dict[str, Any]) -> None:
    """Day 0's difference left ``pending`` on the ended subscription (as an older rerun left it)."""
    from neruba.dal.transaction import Transaction, commit
    from neruba.logic.billing.adjustment_terms import adjustment_record
    from neruba.logic.billing.deltas import line_deltas, rated_lines
    from neruba.timefmt import parse_ts

    ctx = real.ctx
    invoice = ctx.invoices.get(first["id"])
    assert invoice is not None
    sub_id = str(invoice.subscription_id)
    terms = ctx.subscription(sub_id).timeline
    rerated = rated_lines(
        ctx.rate_window(terms, parse_ts(invoice.period_start), parse_ts(invoice.period_end))
    )
    (delta,) = line_deltas(invoice, rerated, ctx.billing.adjustments_of(sub_id, invoice.id))
    assert int(delta["amount_minor"]) == -100
    record = adjustment_record(delta, "pending", None, START + day(1, 9))
    commit(Transaction([ctx.billing.adjustment_put_item(sub_id, record)]))


def test_the_credit_a_correction_gives_back_pays_its_own_invoice(
    real: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN day 0 (400) paid whole by a grant (0 left), billing ended, one call amended into day 1, and
    # day 0's -100 left pending on the subscription
    grant_id = _grant("g1", "purchased", 400)
    first, final = _ended_after_two_days(real, monkeypatch)
    assert _void("a", START + day(1, 9), "v1", timestamp=START + day(1, 2))["correction"] == "completed"
    _pending_of_day0(real, first)

    # WHEN day 1 is rerun: ONE correction carries day 0's -100 and day 1's +100
    status, taken = rerun(api, final["id"], "r1")

    # THEN the -100 goes back to the grant and, in the same transaction, pays the +100
    assert (status, taken["action"]) == (200, "correction_invoiced"), taken
    (doc,) = _corrections(real)
    assert [(ln["amount_minor"], ln["references"]["invoice_id"]) for ln in doc["lines"]] == [
        (100, final["id"])
    ]
    assert (doc["credits_applied_minor"], doc["total_minor"]) == (100, 0)
    (restored,) = doc["grant_restorations"]
    assert (restored["invoice_id"], restored["grant_id"], restored["amount_minor"]) == (
        first["id"],
        grant_id,
        100,
    )
    assert _remaining_of(grant_id) == 0
    assert _balance("receivable") == 0
    assert _balance(f"prepaid_credit#{grant_id}") == 0
    assert_books_agree(real, "acme")
    # AND explain names both: the restoration and the grant paying the line
    explained = explain(api, doc["id"])
    assert [(r["grant_id"], r["amount_minor"]) for r in explained["grant_restorations"]] == [(grant_id, 100)]
    (line,) = explained["lines"]
    assert [(c["grant_id"], c["amount_minor"]) for c in line["credits_applied"]] == [(grant_id, 100)]
    # AND nothing more on a second rerun of either day
    assert rerun(api, final["id"], "r1b")[1]["action"] == "unchanged"
    assert rerun(api, first["id"], "r0")[1]["action"] == "unchanged"
    assert _remaining_of(grant_id) == 0


def _ended_money_day(real: World, monkeypatch: Any) -> dict[str, Any]:
    """Day 0 (4 calls, 400, no credit) the final window, billed and finalized."""
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    sub = subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 4)
    cancel(real.plans, str(sub["id"]), Cancellation(at_period_end=False), now=START + day(0, 20))
    _bill(real, START + day(0, 21), monkeypatch)
    schedule(real, START + day(0, 23))
    assert billing_state(real, str(sub["id"])).status == "ended"
    return _usage(real, 0)


def test_a_correction_invoice_is_paid_partly_by_an_unrelated_grant(
    real: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN the final window billed 400 in money, then a grant of 100 made, then 3 late calls (+300)
    final = _ended_money_day(real, monkeypatch)
    assert final["credits_applied_minor"] == 0
    grant_id = _grant("g1", "promotional", 100)
    real.usage("acme", START + day(0, 4), 7)

    # WHEN it is rerun
    status, taken = rerun(api, final["id"], "r1")

    # THEN the correction invoice applies the 100 of credit, the customer owes 200 of it
    assert (status, taken["correction"]["type"]) == (200, "correction_invoice"), taken
    (doc,) = _corrections(real)
    assert (doc["subtotal_minor"], doc["credits_applied_minor"], doc["total_minor"]) == (300, 100, 200)
    assert taken["correction"]["amount_minor"] == 200
    assert not doc.get("grant_restorations")
    assert _remaining_of(grant_id) == 0
    assert _balance("receivable") == 400 + 200
    assert _balance("promotional_credit_expense") == 100
    assert_books_agree(real, "acme")


def test_a_later_correction_of_a_correction_line_a_grant_paid_gives_back_to_that_grant(
    real: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN day 0 (4 calls) paid whole by g1, the final window; then g2 made and 3 late calls billed on a
    # correction invoice that g2 pays
    g1 = _grant("g1", "promotional", 400)
    final = _ended_money_day(real, monkeypatch)
    assert (final["credits_applied_minor"], _remaining_of(g1)) == (400, 0)
    g2 = _grant("g2", "purchased", 1000)
    real.usage("acme", START + day(0, 4), 7)
    assert rerun(api, final["id"], "r1")[0] == 200
    (doc,) = _corrections(real)
    assert (doc["credits_applied_minor"], doc["total_minor"], _remaining_of(g2)) == (300, 0, 700)

    # WHEN two of the 7 calls are taken back and the window rerun again
    real.usage("acme", START + day(0, 4), 5)
    status, taken = rerun(api, final["id"], "r2")

    # THEN the -200 goes back to g2 (applied last: it gets back first), found on the correction invoice's
    # applications; no money moves and no credit note
    assert (status, taken["correction"]["type"]) == (200, "grant_restoration"), taken
    assert [(r["grant_id"], r["amount_minor"]) for r in taken["correction"]["grant_restorations"]] == [
        (g2, 200)
    ]
    assert (_remaining_of(g1), _remaining_of(g2)) == (0, 900)
    assert _credit_notes(real, final["id"]) == [] == _credit_notes(real, doc["id"])
    assert _balance("receivable") == 0
    assert_books_agree(real, "acme")


# ------------------------------------------------------------------ retry safety


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_rerun_killed_around_its_commit_applies_credit_once(
    real: World, api: Any, monkeypatch: Any, when: str
) -> None:
    from neruba.logic.billing import admin

    final = _ended_money_day(real, monkeypatch)
    grant_id = _grant("g1", "purchased", 500)
    real.usage("acme", START + day(0, 4), 7)
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
    assert rerun(api, final["id"], "rr")[0] == 500
    assert _remaining_of(grant_id) == (200 if when == "after" else 500)
    # WHEN the client retries with the same key
    status, taken = rerun(api, final["id"], "rr")
    # THEN the credit is applied once, and the invoice issued
    assert status == 200, taken
    (doc,) = _corrections(real)
    assert (doc["status"], doc["credits_applied_minor"], doc["total_minor"]) == ("finalized", 300, 0)
    assert _remaining_of(grant_id) == 200
    assert _consumptions(grant_id) == 1
    assert rerun(api, final["id"], "rr2")[1]["action"] == "unchanged"
    assert_books_agree(real, "acme")


def test_a_correction_killed_before_it_is_finalized_keeps_its_credit_once(
    real: World, api: Any, monkeypatch: Any
) -> None:
    from neruba.logic.billing import admin, corrections

    final = _ended_money_day(real, monkeypatch)
    grant_id = _grant("g1", "purchased", 500)
    real.usage("acme", START + day(0, 4), 7)
    issue = corrections.issue_now
    calls: list[str] = []

    def killed_first(ctx: Any, invoice_id: str, now: datetime) -> Any:
        calls.append(invoice_id)
        if len(calls) == 1:
            raise RuntimeError("killed before finalizing")
        return issue(ctx, invoice_id, now)

    monkeypatch.setattr(admin, "issue_now", killed_first)
    assert rerun(api, final["id"], "rr")[0] == 500
    (draft,) = _corrections(real)
    assert (draft["status"], draft["credits_applied_minor"]) == ("draft", 300)
    # WHEN the rerun is retried with its key (the scheduler would finalize it too)
    status, taken = rerun(api, final["id"], "rr")
    assert status == 200, taken
    schedule(real, START + day(1, 2))
    # THEN it is finalized with its credit as written: the grant consumed once
    (doc,) = _corrections(real)
    assert (doc["status"], doc["credits_applied_minor"], doc["total_minor"]) == ("finalized", 300, 0)
    assert _remaining_of(grant_id) == 200
    assert _consumptions(grant_id) == 1
    assert_books_agree(real, "acme")


def test_two_reruns_racing_apply_credit_once(real: World, api: Any, monkeypatch: Any) -> None:
    from neruba.logic.billing import admin

    final = _ended_money_day(real, monkeypatch)
    grant_id = _grant("g1", "purchased", 500)
    real.usage("acme", START + day(0, 4), 7)
    commit = admin.commit
    raced: list[int] = []

    def other_first(unit: Any) -> None:
        if not raced:  # the other rerun reads and commits while this one is between its reads and commit
            raced.append(1)
            status, other = rerun(api, final["id"], "other")
            assert (status, other["action"]) == (200, "correction_invoiced"), other
        commit(unit)

    monkeypatch.setattr(admin, "commit", other_first)
    status, lost = rerun(api, final["id"], "mine")
    assert (status, lost["error"]["code"]) == (409, "invoice_conflict"), lost
    # its retry finds nothing left to bill
    assert rerun(api, final["id"], "mine")[1]["action"] == "unchanged"
    (doc,) = _corrections(real)
    assert (doc["credits_applied_minor"], doc["total_minor"]) == (300, 0)
    assert _remaining_of(grant_id) == 200
    assert _consumptions(grant_id) == 1
    assert_books_agree(real, "acme")


def test_a_correction_applying_credit_is_cancelled_by_a_consumption_meanwhile(
    real: World, api: Any, monkeypatch: Any
) -> None:
    from neruba.dal.transaction import Transaction
    from neruba.domain.credits import CreditApplication
    from neruba.logic.billing import admin

    final = _ended_money_day(real, monkeypatch)
    grant_id = _grant("g1", "purchased", 500)
    real.usage("acme", START + day(0, 4), 7)
    commit = admin.commit
    raced: list[int] = []

    def consumed_meanwhile(unit: Any) -> None:
        if not raced:  # a window of another subscription consumes 260 after the rerun read the grant
            raced.append(260)
            used = [CreditApplication(grant_id, "elsewhere", 260, "purchased")]
            commit(Transaction(ledger().grant_consumption_items(used, at=START + day(1))))
        commit(unit)

    monkeypatch.setattr(admin, "commit", consumed_meanwhile)
    # THEN the correction's transaction is cancelled (its decrement is conditional on the remainder read)
    status, lost = rerun(api, final["id"], "rr")
    assert (status, lost["error"]["code"]) == (409, "invoice_conflict"), lost
    assert _corrections(real) == [] and _remaining_of(grant_id) == 240
    # AND its retry decides again: the 240 left
    status, taken = rerun(api, final["id"], "rr")
    assert status == 200, taken
    (doc,) = _corrections(real)
    assert (doc["credits_applied_minor"], doc["total_minor"]) == (240, 60)
    assert _remaining_of(grant_id) == 0  # (the consumption "elsewhere" posted nothing: no books check)


def test_a_consumption_meanwhile_cancels_a_correction_applying_the_credit_it_gives_back(
    real: World, api: Any, monkeypatch: Any
) -> None:
    from neruba.dal.transaction import Transaction
    from neruba.domain.credits import CreditApplication
    from neruba.logic.billing import admin

    # GIVEN a grant of 500 paid day 0 (400), 100 left; billing ended; one call amended into day 1, a late
    # call of day 1, and day 0's -100 pending: one correction gives 100 back and applies it and the 100
    # left to day 1's +200
    grant_id = _grant("g1", "purchased", 500)
    first, final = _ended_after_two_days(real, monkeypatch)
    assert _void("a", START + day(1, 9), "v1", timestamp=START + day(1, 2))["correction"] == "completed"
    _events("e", at=START + day(1, 3))
    _pending_of_day0(real, first)
    commit = admin.commit
    raced: list[int] = []

    def consumed_meanwhile(unit: Any) -> None:
        if not raced:  # 60 consumed elsewhere after the rerun read the grant: 40 left
            raced.append(60)
            used = [CreditApplication(grant_id, "elsewhere", 60, "purchased")]
            commit(Transaction(ledger().grant_consumption_items(used, at=START + day(1))))
        commit(unit)

    monkeypatch.setattr(admin, "commit", consumed_meanwhile)
    # WHEN the rerun of day 1 races the consumption: cancelled, nothing written
    status, lost = rerun(api, final["id"], "rr")
    assert (status, lost["error"]["code"]) == (409, "invoice_conflict"), lost
    assert (_remaining_of(grant_id), _corrections(real)) == (40, [])
    # THEN its retry decides again: it gives 100 back and applies it with the 40 left
    status, taken = rerun(api, final["id"], "rr")
    assert status == 200, taken
    (doc,) = _corrections(real)
    assert (doc["subtotal_minor"], doc["credits_applied_minor"], doc["total_minor"]) == (200, 140, 60)
    assert [r["amount_minor"] for r in doc["grant_restorations"]] == [100]
    assert _remaining_of(grant_id) == 0


# ------------------------------------------------------------------ tax


@pytest.mark.parametrize("inclusive", [False, True], ids=["exclusive", "inclusive"])
def test_a_correction_invoice_applies_credit_to_taxed_lines_as_a_window_does(
    real: World, api: Any, monkeypatch: Any, inclusive: bool
) -> None:
    # GIVEN 19% tax, a grant of 1000, the final window billed 4 calls (the window's credit applied)
    _taxed(real, inclusive)
    grant_id = _grant("g1", "purchased", 1000)
    final = _ended_money_day(real, monkeypatch)
    # WHEN 4 late calls are billed on a correction invoice
    real.usage("acme", START + day(0, 4), 8)
    status, taken = rerun(api, final["id"], "r1")
    assert status == 200, taken
    (doc,) = _corrections(real)
    # THEN its amounts are the window's for the same lines: credit pays the line's amount (exclusive: net,
    # the tax owed in money; inclusive: tax included)
    keys = ("subtotal_minor", "tax_minor", "tax_included_minor", "credits_applied_minor", "total_minor")
    assert [int(doc.get(k) or 0) for k in keys] == [int(final.get(k) or 0) for k in keys]
    assert _tax19(400, inclusive) == int(doc.get("tax_minor") or 0) + int(doc.get("tax_included_minor") or 0)
    assert doc["credits_applied_minor"] == 400
    assert doc["total_minor"] == (0 if inclusive else _tax19(400, False))
    assert _remaining_of(grant_id) == 200
    assert -_balance("tax_payable") == 2 * _tax19(400, inclusive)
    assert_books_agree(real, "acme")


def test_a_correction_taking_credit_under_the_threshold_tops_up_once(
    real: World, api: Any, monkeypatch: Any
) -> None:
    import boto3

    from neruba.dal.top_ups import TopUpRepository
    from neruba.domain.credits import AutoTopUpRule

    # GIVEN the final window billed 400 in money; then a rule (under 1000 available, top up 5000) and a
    # purchased grant of 1200; then 4 late calls
    final = _ended_money_day(real, monkeypatch)
    rules = TopUpRepository(ledger().table_name)
    boto3.client("dynamodb").transact_write_items(
        TransactItems=[rules.rule_item(AutoTopUpRule("acme", "USD", 1000, 5000))]
    )
    grant_id = _grant("g1", "purchased", 1200)
    real.usage("acme", START + day(0, 4), 8)

    # WHEN the rerun bills them (then again, with the same key)
    assert rerun(api, final["id"], "r1")[0] == 200
    assert rerun(api, final["id"], "r1")[0] == 200

    # THEN the correction takes 400 of credit (800 left, under 1000): one top-up, as after a window
    (doc,) = _corrections(real)
    assert (doc["credits_applied_minor"], _remaining_of(grant_id)) == (400, 800)
    assert len([i for i in real.invoices("acme") if i["kind"] == "topup"]) == 1
    assert_books_agree(real, "acme")


def test_reruns_by_hand_newest_first_leave_the_credit_given_back_on_the_grant(
    real: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN the amend of the first test, rerun by hand newest first (docs/billing.md: "rerun the older
    # invoice first")
    grant_id = _grant("g1", "promotional", 400)
    first, final = _ended_after_two_days(real, monkeypatch)
    assert _void("a", START + day(1, 9), "v1", timestamp=START + day(1, 2))["correction"] == "completed"
    assert rerun(api, final["id"], "r1")[0] == 200
    assert rerun(api, first["id"], "r0")[0] == 200
    # THEN day 1's correction found no credit yet (it asks 100), and day 0's 100 waits on the grant for the
    # customer's next use of credit: no money is lost, the books balance
    (doc,) = _corrections(real)
    assert (doc["credits_applied_minor"], doc["total_minor"]) == (0, 100)
    assert _remaining_of(grant_id) == 100
    assert_books_agree(real, "acme")
