"""A correction waits while an invoice carrying what it takes back has a dispute open (docs/billing.md, "A
correction waits for an open dispute"): whether the disputed money stays the customer's (lost) or comes
back (won) decides what a credit note may still give back, so the correction settles once the dispute is
decided, never guessing, and never before.

Real pricing (1.00 per API call, daily windows), 19% exclusive tax (``taxed_days``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day
from tests.functional.billing.taxed_days import day0_billed, day1_billed
from tests.functional.billing.test_correction_refunded import _ended
from tests.functional.billing.test_correction_settlement import _agree
from tests.functional.billing.test_event_void_billing import _bill
from tests.functional.billing.test_grant_paid_corrections import _balance, _usage
from tests.functional.billing.test_grant_paid_tax_where import _correction_invoices, _notes_total
from tests.functional.billing.test_negative_final_invoice import _credit_notes
from tests.functional.billing.test_real_correction import api, rerun

__all__ = ["api"]  # the fixture, used by name


def _stores() -> Any:
    from neruba import bootstrap
    from neruba.logic.ledger.admin import Stores

    return Stores(
        bootstrap.ledger(), bootstrap.audit(), bootstrap.catalog().get_customer, bootstrap.invoices().get
    )


def _dispute(invoice_id: str, amount: int) -> str:
    """A dispute of ``amount`` of ``invoice_id``'s payment, opened; its id."""
    from neruba.logic.ledger.admin import Operator, open_dispute
    from neruba.models.ledger import DisputeCreate

    body = DisputeCreate(amount_minor=amount, invoice_id=invoice_id, reason="chargeback")
    return str(open_dispute(_stores(), Operator("key:t", None, f"open-{invoice_id}"), "acme", body)["id"])


def _decide(dispute_id: str, outcome: str) -> None:
    from neruba.logic.ledger.admin import Operator, close_dispute
    from neruba.models.ledger import DisputeClose

    close_dispute(_stores(), Operator("key:t", None, f"close-{dispute_id}"), dispute_id,
                  DisputeClose(outcome=outcome, reason="decided"))  # fmt: skip


def _paid_correction(real: World, api: Any, final: dict[str, Any]) -> dict[str, Any]:
    """2 calls counted late on day 1 (rerun: a correction invoice C of 200 + 38), C paid whole."""
    from tests.functional.billing.credit_note_support import pay

    real.usage("acme", START + day(1, 2), 3)
    status, billed = rerun(api, final["id"], "in")
    assert (status, billed["correction"]["type"]) == (200, "correction_invoice"), billed
    (doc,) = _correction_invoices(real)
    pay(real, doc["id"], int(doc["total_minor"]), payment_id="ch_c")
    return doc


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_a_correction_after_the_end_waits_for_a_dispute_of_the_invoice_it_credits(
    real: World, api: Any, monkeypatch: Any, outcome: str
) -> None:
    from neruba.logic.billing.corrections import late_corrections

    # GIVEN billing ended, a correction invoice C of 2 late calls (200 + 38) paid, 10 of it disputed
    final, _ = _ended(real, monkeypatch, 0)
    doc = _paid_correction(real, api, final)
    dispute_id = _dispute(doc["id"], 10)
    tax_before = _balance("tax_payable")

    # WHEN the 2 calls are taken back while the dispute is open
    real.usage("acme", START + day(1, 2), 1)
    status, refused = rerun(api, final["id"], "out")

    # THEN the rerun is refused (409, naming C and the open dispute), and nothing is written
    assert status == 409, refused
    assert refused["error"]["code"] == "invoice_conflict"
    assert refused["error"]["details"][0]["invoice_id"] == doc["id"]
    assert refused["error"]["details"][0]["reason"] == "dispute_open"
    assert _credit_notes(real, doc["id"]) == [] and len(_correction_invoices(real)) == 1
    assert _balance("tax_payable") == tax_before
    # AND the corrections sweep defers it, naming why
    deferred: list[dict[str, Any]] = []
    assert late_corrections(real.ctx, "acme", START + day(2, 1), deferred=deferred) == []
    assert deferred == [{"invoice_id": final["id"], "subscription_id": final["subscription_id"],
                         "reason": "dispute_open"}]  # fmt: skip

    # WHEN the dispute is decided and the sweep runs again
    _decide(dispute_id, outcome)
    issued = late_corrections(real.ctx, "acme", START + day(2, 2))

    # THEN C is credited: all it billed when the dispute was won (the 10 came back to us), the rest of it
    # when lost (the customer kept the 10); the tax owed is the surviving calls' either way
    assert len(issued) == 1, issued
    amount, tax = _notes_total(real, doc["id"])
    assert amount + tax == (238 if outcome == "won" else 228)
    assert _notes_total(real, final["id"]) == (0, 0)
    assert -_balance("tax_payable") == 95
    assert _balance("receivable") == 476 + 119 - (amount + tax)
    _agree(real)
    assert late_corrections(real.ctx, "acme", START + day(2, 3)) == []  # once
    assert rerun(api, final["id"], "again")[1]["action"] == "unchanged"


@pytest.mark.parametrize(("disputed", "outcome"), [(50, "won"), (300, "lost")])
def test_a_window_leaves_a_difference_pending_while_an_invoice_carrying_its_line_is_disputed(
    real: World, monkeypatch: Any, disputed: int, outcome: str
) -> None:
    from neruba.logic.billing.upcoming import upcoming_invoice
    from tests.functional.billing.credit_note_support import pay

    # GIVEN day 1's invoice billed its own call and 2 late calls of day 0 (100 + 200 adjustment, 57 of
    # tax: 357), paid, ``disputed`` of it disputed
    day0_billed(real, monkeypatch)
    day1_billed(real, monkeypatch, 6, end=False)
    second = _usage(real, 1)
    assert second["total_minor"] == 357
    pay(real, second["id"], 357, payment_id="ch_w1")
    dispute_id = _dispute(second["id"], disputed)

    # WHEN the 2 late calls are voided and day 2 (3 calls) is billed while the dispute is open
    real.usage("acme", START + day(0, 4), 4)
    real.usage("acme", START + day(2, 2), 3)
    preview = upcoming_invoice(real.plans, real.ctx.usage, "acme", START + day(2, 23), real.ctx.billing,
                               late=real.ctx)  # fmt: skip
    _bill(real, START + day(3, 1), monkeypatch)

    # THEN day 2 bills its own calls only; the difference is kept pending (shown nowhere as billed)
    assert [li["kind"] for li in preview["windows"][0]["lines"] if li["kind"] == "adjustment"] == []
    third = _usage(real, 2)
    assert [li for li in third["lines"] if li["kind"] == "adjustment"] == []
    assert third["total_minor"] == 357
    pending = real.ctx.billing.pending_adjustments(str(second["subscription_id"]))
    assert [int(a.line["amount_minor"]) for a in pending] == [-200]
    _agree(real)

    # WHEN the dispute is decided and day 3 (3 calls, staying above zero) is billed
    _decide(dispute_id, outcome)
    real.usage("acme", START + day(3, 2), 3)
    _bill(real, START + day(4, 1), monkeypatch)

    # THEN day 3 carries the difference: all of it when won; when lost, less what the lost dispute gave
    # back beyond what day 1 keeps billing (its call: 119), never twice
    fourth = _usage(real, 3)
    (line,) = [li for li in fourth["lines"] if li["kind"] == "adjustment"]
    given = int(line["amount_minor"]) + int(line["tax"]["exclusive_minor"])
    assert given == -(238 if outcome == "won" else 238 - (disputed - 119))
    assert real.ctx.billing.pending_adjustments(str(second["subscription_id"])) == []
    assert _credit_notes(real, second["id"]) == []
    # AND the tax owed is the surviving calls' (the lost dispute's part of the calls' tax left it)
    assert -_balance("tax_payable") == 76 + 19 + 57 + 57  # days 0 to 3: 4, 1, 3 and 3 calls
    _agree(real)


def test_a_difference_left_pending_by_the_final_window_is_settled_by_the_sweep_once_decided(
    real: World, monkeypatch: Any
) -> None:
    from neruba.logic.billing.corrections import late_corrections
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation
    from tests.functional.billing.credit_note_support import pay
    from tests.functional.billing.helpers import schedule

    # GIVEN day 1's invoice carrying 2 late calls of day 0 (357 in all) paid, 50 of it disputed; the late
    # calls voided and the subscription cancelled on day 2: its final window leaves the difference pending
    day0_billed(real, monkeypatch)
    day1_billed(real, monkeypatch, 6, end=False)
    second = _usage(real, 1)
    pay(real, second["id"], 357, payment_id="ch_w1")
    dispute_id = _dispute(second["id"], 50)
    real.usage("acme", START + day(0, 4), 4)
    real.usage("acme", START + day(2, 2), 3)
    sub_id = str(second["subscription_id"])
    cancel(real.plans, sub_id, Cancellation(at_period_end=False), now=START + day(2, 5))
    _bill(real, START + day(2, 6), monkeypatch)
    schedule(real, START + day(2, 8))
    final = _usage(real, 2)
    assert (final["status"], [li["kind"] for li in final["lines"]]) == ("finalized", ["usage"])
    assert late_corrections(real.ctx, "acme", START + day(3, 1)) == []  # still disputed: deferred

    # WHEN the dispute is won and the corrections sweep runs
    _decide(dispute_id, "won")
    issued = late_corrections(real.ctx, "acme", START + day(3, 2))

    # THEN the difference is settled: day 1's invoice is credited for the 2 calls (238), nothing pending
    assert len(issued) == 1, issued
    assert sum(_notes_total(real, second["id"])) == 238
    assert real.ctx.billing.pending_adjustments(str(second["subscription_id"])) == []
    assert -_balance("tax_payable") == 76 + 19 + 57
    _agree(real)
    assert late_corrections(real.ctx, "acme", START + day(3, 3)) == []  # once


@pytest.mark.parametrize("lost", [100, 200, 237, 238])
def test_the_tax_a_lost_dispute_gave_back_of_usage_taken_back_leaves_tax_payable_whole(
    real: World, api: Any, monkeypatch: Any, lost: int
) -> None:
    # GIVEN billing ended, a correction invoice C of 2 late calls (200 + 38) paid, ``lost`` of it charged
    # back (the dispute lost)
    final, _ = _ended(real, monkeypatch, 0)
    doc = _paid_correction(real, api, final)
    _decide(_dispute(doc["id"], lost), "lost")

    # WHEN the 2 calls are taken back
    real.usage("acme", START + day(1, 2), 1)
    status, back = rerun(api, final["id"], "out")
    assert status == 200, back

    # THEN C is credited what the dispute left of it, and the tax owed is the surviving calls' (95): the
    # tax inside what the dispute gave back left tax_payable, all of it
    assert sum(_notes_total(real, doc["id"])) == 238 - lost
    assert _notes_total(real, final["id"]) == (0, 0)
    assert -_balance("tax_payable") == 95
    _agree(real)


def test_a_grant_paid_correction_charged_back_whole_gives_the_grant_its_part_and_moves_all_the_tax(
    real: World, api: Any, monkeypatch: Any
) -> None:
    from tests.functional.billing.test_grant_paid_corrections import _remaining_of

    # GIVEN a grant paying C's 200, the 38 of tax paid in money and charged back (lost)
    final, grant_id = _ended(real, monkeypatch, 1000)
    doc = _paid_correction(real, api, final)
    assert doc["total_minor"] == 38
    _decide(_dispute(doc["id"], 38), "lost")

    # WHEN the 2 calls are taken back
    real.usage("acme", START + day(1, 2), 1)
    assert rerun(api, final["id"], "out")[0] == 200

    # THEN the grant has its 200 back, no note (the dispute gave the 38 back), tax owed 95
    assert _remaining_of(str(grant_id)) == 500
    assert _notes_total(real, doc["id"]) == (0, 0)
    assert -_balance("tax_payable") == 95
    _agree(real)


@pytest.mark.parametrize("how", ["dispute_lost", "refund"])
def test_usage_of_an_invoice_given_back_whole_then_taken_back_moves_its_tax_off_tax_payable(
    real: World, api: Any, monkeypatch: Any, how: str
) -> None:
    from tests.functional.billing.credit_note_support import pay, refund

    # GIVEN billing ended, day 1's invoice (1 call: 100 + 19) paid, then all of it given back
    final, _ = _ended(real, monkeypatch, 0)
    pay(real, final["id"], 119, payment_id="ch_d1")
    if how == "refund":
        refund(final["id"], 119)
    else:
        _decide(_dispute(final["id"], 119), "lost")

    # WHEN its call is taken back
    real.usage("acme", START + day(1, 2), 0)
    status, back = rerun(api, final["id"], "out")
    assert status == 200, back

    # THEN nothing more is given back (no note), and tax_payable holds day 0's tax only
    assert _notes_total(real, final["id"]) == (0, 0)
    assert -_balance("tax_payable") == 76
    _agree(real)


def test_a_backfill_revert_waits_for_a_dispute_without_failing_its_message(
    real: World, monkeypatch: Any
) -> None:
    import boto3

    from neruba.logic.billing.backfill_commit import enqueue
    from tests.functional.billing.backfill_support import act, calls, events, open_backfill, scope
    from tests.functional.billing.credit_note_support import pay
    from tests.functional.billing.helpers import work
    from tests.functional.billing.test_correction_draft_carrier import read_backfill
    from tests.support.aws import queue_url, receive_all

    # GIVEN billing ended; a backfill of 2 calls on day 1 committed (a correction invoice C of 200 + 38),
    # C paid, 10 of it disputed
    _ended(real, monkeypatch, 0)
    status, backfill = open_backfill(scope())
    assert status == 201, backfill
    assert events(backfill["id"], calls("bf", START + day(1, 3), 2))[0] == 200
    assert act(backfill["id"], "commit")[1]["status"] == "committed"
    (doc,) = _correction_invoices(real)
    pay(real, doc["id"], 238, payment_id="ch_c")
    dispute_id = _dispute(doc["id"], 10)

    # WHEN the backfill is reverted while the dispute is open, and the worker takes its message
    status, reverting = act(backfill["id"], "revert", body={"reason": "collector replayed twice"})
    assert (status, reverting["status"]) == (200, "reverting"), reverting
    work(real, START + day(2, 1), monkeypatch)  # drains: the message is not failed again and again

    # THEN the revert waits, nothing credited; its message was not failed until the dead-letter queue
    assert read_backfill(backfill["id"])["status"] == "reverting"
    assert _credit_notes(real, doc["id"]) == []
    assert receive_all(boto3.client("sqs"), queue_url("BillingDLQ")) == []

    # WHEN the dispute is won and the message is sent again (as the billing sweep does after its lag)
    _decide(dispute_id, "won")
    assert enqueue(real.ctx, backfill["id"])
    work(real, START + day(2, 2), monkeypatch)

    # THEN the revert finishes: C credited all it billed, once
    assert read_backfill(backfill["id"])["status"] == "reverted"
    assert sum(_notes_total(real, doc["id"])) == 238
    assert -_balance("tax_payable") == 95
    _agree(real)


def test_a_chargeback_of_a_payment_a_correction_credited_is_booked_as_that_credit_paid_out(
    real: World, api: Any, monkeypatch: Any
) -> None:
    from neruba.errors import ConflictError
    from neruba.logic.ledger.admin import Operator
    from neruba.logic.ledger.admin import refund as refund_action
    from neruba.models.ledger import RefundCreate

    # GIVEN C (200 + 38) paid, its 2 calls taken back: C's note gave the 238 to the customer's credit
    final, _ = _ended(real, monkeypatch, 0)
    doc = _paid_correction(real, api, final)
    real.usage("acme", START + day(1, 2), 1)
    assert rerun(api, final["id"], "out")[0] == 200
    assert sum(_notes_total(real, doc["id"])) == 238
    cash = _balance("cash")

    # WHEN the bank charges the payment back: nothing of it is left to dispute in the books
    with pytest.raises(ConflictError) as refused:
        _dispute(doc["id"], 238)
    assert refused.value.code == "dispute_exceeds_refundable"

    # AND the operator follows the runbook: the credit balance paid out (docs/runbooks/disputes.md)
    body = RefundCreate(amount_minor=238, invoice_id=doc["id"], credit_balance=True,
                        reason="chargeback of a payment credited by a correction")  # fmt: skip
    refund_action(_stores(), Operator("key:t", None, "chargeback"), "acme", body)

    # THEN the cash the bank took left, the customer's credit is gone (they owe days 0 and 1), revenue is
    # the surviving calls' only
    assert _balance("cash") == cash - 238
    assert _balance("receivable") == 476 + 119
    assert -_balance("revenue") == 500 and -_balance("tax_payable") == 95
    _agree(real)


def test_a_rerun_before_the_end_names_the_dispute_its_differences_wait_for(
    real: World, api: Any, monkeypatch: Any
) -> None:
    from tests.functional.billing.credit_note_support import pay

    # GIVEN day 1's invoice carrying 2 late calls of day 0 (200 + 38 of tax), paid, 50 of it disputed
    day0_billed(real, monkeypatch)
    day1_billed(real, monkeypatch, 6, end=False)
    first, second = _usage(real, 0), _usage(real, 1)
    pay(real, second["id"], 357, payment_id="ch_w1")
    dispute_id = _dispute(second["id"], 50)

    # WHEN the 2 late calls are voided and day 0's invoice is rerun while the dispute is open
    real.usage("acme", START + day(0, 4), 4)
    status, answer = rerun(api, first["id"], "rerun-open")

    # THEN the difference is pending for the next window, and the answer names what holds it until then
    assert (status, answer["action"]) == (200, "adjustment_pending"), answer
    (line,) = answer["correction"]["lines"]
    assert int(line["amount_minor"]) == -200
    assert answer["correction"]["waiting"] == [
        {"line_id": line["line_id"], "invoice_id": second["id"], "reason": "dispute_open"}
    ]

    # WHEN the dispute is decided and more calls are voided, the next rerun's answer waits for nothing
    _decide(dispute_id, "won")
    real.usage("acme", START + day(0, 4), 3)
    status, later = rerun(api, first["id"], "rerun-decided")
    assert (status, later["action"]) == (200, "adjustment_pending"), later
    assert later["correction"]["waiting"] == []
