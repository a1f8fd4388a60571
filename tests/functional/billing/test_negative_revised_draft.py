"""A window's draft revised below zero when it is finalized (docs/billing.md, "A window invoice below
zero"): the finalize's revision settles the draft's negative adjustments by credit notes against the
invoices carrying them, as the window would have, in the revision's one transaction; a draft settled
when created is not settled again. Real pricing (1.00 per API call, daily windows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.functional.billing.conftest import START, World, ledger
from tests.functional.billing.credit_note_support import pay
from tests.functional.billing.helpers import day, schedule
from tests.functional.billing.test_event_void_billing import _bill, _events, _void
from tests.functional.billing.test_negative_final_invoice import _credit_notes, _remaining
from tests.functional.billing.test_negative_window_invoice import _day0_billed, _usage


def _draft_at_100(real: World, monkeypatch: Any) -> tuple[dict[str, Any], str]:
    """Day 0 (400) and day 1 (100) finalized; three of day 0's calls voided (-300) and four calls on
    day 2: day 2's draft nets 400 - 300 = 100 when created, nothing settled."""
    first, sub_id = _day0_billed(real, monkeypatch)
    for n, tx in enumerate("abc"):
        assert _void(tx, START + day(2, 4), f"v{n}")["correction"] == "completed"
    _events("g", "h", "i", "j", at=START + day(2, 2))
    _bill(real, START + day(3, 1), monkeypatch)
    draft = _usage(real, 2)
    assert (draft["status"], draft["total_minor"]) == ("draft", 100)
    assert _credit_notes(real, first["id"]) == []
    for n, tx in enumerate("ghij"):  # day 2's own usage voided during the grace period
        _void(tx, START + day(3, 2), f"w{n}")
    return first, sub_id


def _balanced(real: World, receivable: int) -> dict[str, int]:
    remaining = _remaining(real)
    assert ledger().balances("acme")["USD"]["receivable"] == receivable
    assert sum(remaining.values()) == receivable, remaining
    assert ledger().reconcile("acme") == []
    return remaining


def test_a_draft_revised_below_zero_settles_its_negative_adjustments(real: World, monkeypatch: Any) -> None:
    first, sub_id = _draft_at_100(real, monkeypatch)

    # WHEN the draft is finalized: re-rated, it nets 0 - 300
    schedule(real, START + day(3, 3))

    # THEN the -300 is credited to day 0's invoice by a note, not left on day 2's invoice
    second = _usage(real, 2)
    assert second["status"] == "finalized"
    assert [line for line in second["lines"] if line["kind"] == "adjustment"] == []
    assert second["total_minor"] == 0
    (note,) = _credit_notes(real, first["id"])
    assert note["amount_minor"] == 300
    stored = real.ctx.billing.credit_notes.get(note["id"])
    assert stored is not None
    (settled,) = stored["correction"]["adjustments"]
    assert (settled["corrects"]["invoice_id"], settled["amount_minor"]) == (first["id"], 300)
    # AND the adjustment record is applied to the note
    records = {a.original_invoice_id: a for a in real.ctx.billing.adjustments(sub_id)}
    assert (records[first["id"]].status, records[first["id"]].applied_to) == ("applied", note["id"])
    # AND the invoices ask what the customer owes: 100 + 100 + 0
    remaining = _balanced(real, 200)
    assert (remaining[first["id"]], remaining[second["id"]]) == (100, 0)

    # WHEN the finalize runs again (a redelivery): nothing more is written
    schedule(real, START + day(3, 4))
    assert [n["amount_minor"] for n in _credit_notes(real, first["id"])] == [300]
    assert _usage(real, 2)["rev"] == second["rev"]
    _balanced(real, 200)


def test_a_payment_landing_while_a_draft_is_revised_below_zero_is_decided_again(
    real: World, monkeypatch: Any
) -> None:
    from neruba.logic.billing import finalize
    from neruba.logic.billing.finalize import finalize_invoice, no_fence

    first, _sub_id = _draft_at_100(real, monkeypatch)
    draft = real.ctx.invoices.get(_usage(real, 2)["id"])
    assert draft is not None
    recompute = finalize.recompute_draft
    paid: list[int] = []

    def paid_meanwhile(*args: Any, **kwargs: Any) -> Any:
        built = recompute(*args, **kwargs)
        if not paid:  # a payment of day 0's invoice commits between the revision's reads and its commit
            pay(real, first["id"], 100)
            paid.append(100)
        return built

    monkeypatch.setattr(finalize, "recompute_draft", paid_meanwhile)
    now: datetime = START + day(3, 3)
    # WHEN the revision's transaction meets the changed invoice: cancelled whole, nothing written
    assert finalize_invoice(real.ctx, draft, now, no_fence) is None
    assert _credit_notes(real, first["id"]) == []
    assert (_usage(real, 2)["status"], _usage(real, 2)["total_minor"]) == ("draft", 100)
    # THEN the retry settles against the invoice as it is now
    again = real.ctx.invoices.get(draft.id)
    assert again is not None
    done = finalize_invoice(real.ctx, again, now, no_fence)
    assert done is not None and done.status == "finalized"
    assert [n["amount_minor"] for n in _credit_notes(real, first["id"])] == [300]
    remaining = _balanced(real, 400 + 100 - 100 - 300)
    assert (remaining[first["id"]], remaining[draft.id]) == (0, 0)


def test_a_draft_settled_when_created_is_not_settled_again_when_revised(
    real: World, monkeypatch: Any
) -> None:
    first, _sub_id = _day0_billed(real, monkeypatch)
    for n, tx in enumerate("abc"):
        assert _void(tx, START + day(2, 4), f"v{n}")["correction"] == "completed"
    _events("g", "h", at=START + day(2, 2))
    # GIVEN day 2's draft created below zero (200 - 300): the -300 credited to day 0 when created
    _bill(real, START + day(3, 1), monkeypatch)
    assert _usage(real, 2)["total_minor"] == 200
    assert [n["amount_minor"] for n in _credit_notes(real, first["id"])] == [300]
    # WHEN one of its own calls is voided during the grace period and it is finalized (revised to 100)
    _void("g", START + day(3, 2), "w0")
    schedule(real, START + day(3, 3))
    # THEN the -300 is not credited again
    second = _usage(real, 2)
    assert (second["status"], second["total_minor"]) == ("finalized", 100)
    assert [n["amount_minor"] for n in _credit_notes(real, first["id"])] == [300]
    _balanced(real, 100 + 100 + 100)


def test_an_operators_rerun_revising_a_draft_below_zero_settles_the_same_way(
    real: World, monkeypatch: Any
) -> None:
    from neruba.logic.billing.admin import rerun_invoice
    from neruba.models.billing import RerunRequest

    first, sub_id = _draft_at_100(real, monkeypatch)
    draft_id = _usage(real, 2)["id"]
    # WHEN an operator reruns the draft during its grace period (it nets 0 - 300)
    answer = rerun_invoice(
        real.ctx, draft_id, RerunRequest(reason="voids"), "key:ops", "rr-1", now=START + day(3, 2)
    )
    # THEN the revision credits the -300 to day 0's invoice, the draft keeps no negative line
    assert answer["action"] == "draft_recomputed"
    assert [line for line in _usage(real, 2)["lines"] if line["kind"] == "adjustment"] == []
    (note,) = _credit_notes(real, first["id"])
    assert note["amount_minor"] == 300
    records = {a.original_invoice_id: a for a in real.ctx.billing.adjustments(sub_id)}
    assert records[first["id"]].applied_to == note["id"]
    _balanced(real, 200)
    # AND finalizing it afterwards credits nothing more
    schedule(real, START + day(3, 3))
    assert _usage(real, 2)["status"] == "finalized"
    assert [n["amount_minor"] for n in _credit_notes(real, first["id"])] == [300]
    _balanced(real, 200)
