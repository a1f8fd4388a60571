"""A negative difference gives back at most what the customer is still billed for its line, wherever it
is applied (docs/billing.md, "A correction gives back at most what the line billed"): a window's
adjustment line (final or not, below zero or not), a rerun after the end and the upcoming preview. What
an operator's credit note already took back of the line counts as taken back.

Real pricing (1.00 per API call, daily windows): day 0 billed 4 calls (400), credited whole by an
operator, then two of its calls voided (a difference of -200 the customer already has back)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.billing.conftest import START, World, ledger, subscribe_real
from tests.functional.billing.helpers import day, schedule, work
from tests.functional.billing.test_correction_settlement import _agree, _credit_note
from tests.functional.billing.test_event_void_billing import _bill, _events, _void
from tests.functional.billing.test_real_correction import api, rerun

__all__ = ["api"]  # the fixture, used by name


def _credited_then_two_voids(real: World, api: Any, monkeypatch: Any, whole: bool = True) -> tuple[str, str]:
    """Day 0 (400) credited by an operator (whole, or 300 of it), then two of its calls voided."""
    sub = subscribe_real(real, "acme")
    _events("a", "b", "c", "d", at=START + day(0, 4))
    _bill(real, START + day(1, 1), monkeypatch)
    schedule(real, START + day(1, 3))
    first = real.invoices("acme")[1]
    assert (first["status"], first["total_minor"]) == ("finalized", 400)
    (line,) = [line for line in first["lines"] if line["kind"] == "usage"]
    body = {} if whole else {"lines": [{"line_id": line["line_id"], "amount_minor": 300}]}
    status, note = _credit_note(api, first["id"], "cn-op", **body)
    assert status == 201, note
    assert _void("a", START + day(1, 4), "v1")["correction"] == "completed"
    assert _void("b", START + day(1, 4), "v2")["correction"] == "completed"
    return first["id"], str(sub["id"])


def _final_window(real: World, sub_id: str, monkeypatch: Any) -> dict[str, Any]:
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    cancel(real.plans, sub_id, Cancellation(at_period_end=False), now=START + day(1, 5))
    _bill(real, START + day(1, 6), monkeypatch)
    schedule(real, START + day(1, 8))
    work(real, START + day(1, 8), monkeypatch)
    final = real.invoices("acme")[-1]
    assert final["status"] == "finalized", final
    return final


def _receivable() -> int:
    return int(ledger().balances("acme")["USD"]["receivable"])


def test_a_final_window_below_zero_gives_back_nothing_an_operator_credited_whole(
    real: World, api: Any, monkeypatch: Any
) -> None:
    _first, sub_id = _credited_then_two_voids(real, api, monkeypatch)
    _events("e", at=START + day(1, 2))
    # WHEN the final window (1 call, and the -200 of day 0) is billed
    final = _final_window(real, sub_id, monkeypatch)
    # THEN it bills its own call only: the -200 was given back already by the operator's note
    assert final["total_minor"] == 100, final["lines"]
    assert [line["kind"] for line in final["lines"]] == ["usage"]
    assert _receivable() == 100
    _agree(real)


def test_a_final_window_above_zero_gives_back_nothing_an_operator_credited_whole(
    real: World, api: Any, monkeypatch: Any
) -> None:
    _first, sub_id = _credited_then_two_voids(real, api, monkeypatch)
    _events("e", "f", "g", at=START + day(1, 2))
    # WHEN the final window (3 calls, and the -200 of day 0) is billed
    final = _final_window(real, sub_id, monkeypatch)
    # THEN the customer is not given 600 back for a day billed 400: the window bills its 3 calls
    assert final["total_minor"] == 300, final["lines"]
    assert _receivable() == 300
    _agree(real)


def test_a_window_before_the_end_and_its_preview_give_back_nothing_an_operator_credited_whole(
    real: World, api: Any, monkeypatch: Any
) -> None:
    from neruba.logic.billing.upcoming import upcoming_invoice

    _credited_then_two_voids(real, api, monkeypatch)
    _events("e", "f", "g", at=START + day(1, 2))
    # THEN the preview of day 1 shows its 3 calls and no adjustment taking back the 200 again
    shown = upcoming_invoice(real.plans, real.ctx.usage, "acme", START + day(1, 6), real.ctx.billing,
                             late=real.ctx)  # fmt: skip
    (window,) = shown["windows"]
    assert window["pending_adjustments_minor"] == 0, window["lines"]
    assert [line for line in window["lines"] if line.get("kind") == "adjustment"] == []
    # AND the invoice of day 1 bills the same
    _bill(real, START + day(2, 1), monkeypatch)
    second = real.invoices("acme")[2]
    assert second["total_minor"] == 300, second["lines"]
    assert _receivable() == 300
    _agree(real)


def test_a_later_event_after_the_whole_credit_is_still_billed(
    real: World, api: Any, monkeypatch: Any
) -> None:
    _credited_then_two_voids(real, api, monkeypatch)
    _bill(real, START + day(2, 1), monkeypatch)  # day 1: nothing, the -200 absorbed
    assert real.invoices("acme")[2]["total_minor"] == 0
    # WHEN a late call of day 0 arrives (day 0 now counts 3 calls, 300; the customer was billed 400 and
    # got 400 back, then 200 of it counted as the voids' difference)
    _events("h", at=START + day(0, 5))
    _bill(real, START + day(3, 1), monkeypatch)
    # THEN its difference (+100 against the re-rated 200) is billed
    third = real.invoices("acme")[3]
    assert third["total_minor"] == 100, third["lines"]
    _agree(real)


def test_a_partial_operator_credit_caps_the_final_window_at_what_is_left(
    real: World, api: Any, monkeypatch: Any
) -> None:
    first_id, sub_id = _credited_then_two_voids(real, api, monkeypatch, whole=False)
    _events("e", at=START + day(1, 2))
    final = _final_window(real, sub_id, monkeypatch)
    # THEN the 100 still billed on day 0's line is credited there, the rest was given back already:
    # the final invoice bills its own call
    assert final["total_minor"] == 100, final["lines"]
    invoice = real.ctx.invoices.get(first_id)
    assert invoice is not None
    assert [n["amount_minor"] for n in invoice.document.get("credit_notes") or []][-1:] == [100]
    assert _receivable() == 100
    _agree(real)


def test_a_rerun_after_the_end_gives_back_nothing_an_operator_credited_whole(
    real: World, api: Any, monkeypatch: Any
) -> None:
    # the same steps with the voids after the end, then a rerun: the comparison the windows must match
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    sub = subscribe_real(real, "acme")
    _events("a", "b", "c", "d", at=START + day(0, 4))
    _bill(real, START + day(1, 1), monkeypatch)
    schedule(real, START + day(1, 3))
    first = real.invoices("acme")[1]
    assert _credit_note(api, first["id"], "cn-op")[0] == 201
    _events("e", at=START + day(1, 2))
    cancel(real.plans, str(sub["id"]), Cancellation(at_period_end=False), now=START + day(1, 5))
    _bill(real, START + day(1, 6), monkeypatch)
    schedule(real, START + day(1, 8))
    assert _void("a", START + day(1, 9), "v1")["correction"] == "completed"
    assert _void("b", START + day(1, 9), "v2")["correction"] == "completed"
    status, taken = rerun(api, first["id"], "rr")
    assert status == 200, taken
    # nothing is issued, and the answer says so: unchanged, no correction, the difference re-rating found
    assert (taken["action"], taken["correction"], taken["difference"]["total_minor"]) == (
        "unchanged", None, -200
    ), taken  # fmt: skip
    assert _receivable() == 100
    _agree(real)


def _paid_then_given_back(real: World, monkeypatch: Any, how: str) -> str:
    """Day 0 (400) paid, the subscription ended (its final window bills 1 call), then the payment given
    back outside credit notes: a refund (whole or 300), a dispute open, won or lost."""
    from neruba import bootstrap
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.logic.ledger.admin import Operator, Stores, close_dispute, open_dispute
    from neruba.models.catalog import Cancellation
    from neruba.models.ledger import DisputeClose, DisputeCreate
    from tests.functional.billing.credit_note_support import pay, refund

    sub = subscribe_real(real, "acme")
    _events("a", "b", "c", "d", at=START + day(0, 4))
    _bill(real, START + day(1, 1), monkeypatch)
    schedule(real, START + day(1, 3))
    first = real.invoices("acme")[1]
    _events("e", at=START + day(1, 2))
    cancel(real.plans, str(sub["id"]), Cancellation(at_period_end=False), now=START + day(1, 5))
    _bill(real, START + day(1, 6), monkeypatch)
    schedule(real, START + day(1, 8))
    pay(real, first["id"], 400)
    if how.startswith("refund"):
        refund(first["id"], 400 if how == "refund" else 300)
    else:
        stores = Stores(
            bootstrap.ledger(), bootstrap.audit(), bootstrap.catalog().get_customer, bootstrap.invoices().get
        )
        body = DisputeCreate(amount_minor=400, invoice_id=first["id"], reason="chargeback")
        opened = open_dispute(stores, Operator("key:t", None, "d1"), "acme", body)
        if how != "dispute_open":
            outcome = DisputeClose(outcome="won" if how == "dispute_won" else "lost", reason="closed")
            close_dispute(stores, Operator("key:t", None, "d2"), str(opened["id"]), outcome)
    assert _void("a", START + day(1, 9), "v1")["correction"] == "completed"
    assert _void("b", START + day(1, 9), "v2")["correction"] == "completed"
    return str(first["id"])


@pytest.mark.parametrize(
    ("how", "given"),
    [("refund", 0), ("refund_part", 100), ("dispute_open", 0), ("dispute_lost", 0), ("dispute_won", 200)],
)
def test_money_a_refund_or_dispute_gave_back_counts_as_taken_back(
    real: World, api: Any, monkeypatch: Any, how: str, given: int
) -> None:
    first_id = _paid_then_given_back(real, monkeypatch, how)
    # WHEN day 0 is rerun after its two voids (a difference of -200)
    status, taken = rerun(api, first_id, "rr")
    if how == "dispute_open":  # it waits for the dispute to be decided (test_correction_disputed.py)
        assert (status, taken["error"]["details"][0]["reason"]) == (409, "dispute_open"), taken
        stored = real.ctx.invoices.get(first_id)
        assert stored is not None and not stored.document.get("credited_minor")  # nothing written
        return
    assert status == 200, taken
    # THEN it gives back only what the customer still pays for the line: never a credit note invoice
    assert [i for i in real.invoices("acme") if i["kind"] == "credit_note"] == []
    notes = (taken["correction"] or {}).get("credit_notes") or []
    assert sum(int(n["amount_minor"]) for n in notes) == given, taken
    assert taken["action"] == ("correction_invoiced" if given else "unchanged"), taken
    _agree(real)
