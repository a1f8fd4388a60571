"""A rerun after the end while a draft carries the corrected invoice's differences (docs/billing.md,
"Corrections after the end"): the draft's adjustment line is not yet a finalized carrier, so settling
around it would credit the difference standalone (promotional credit turned into cash-like credit) and
leave the draft asking for it. The rerun is refused (409 ``invoice_conflict``, nothing written) and the
corrections sweep leaves it for its next run; once the draft is finalized the same rerun settles against
it as when it was finalized first: the grant gets its 100 back, the 19 of tax goes back on the draft's
invoice.

Real pricing (1.00 per API call, daily windows), 19% exclusive tax, a promotional grant of 800: day 0
billed 4 calls (400 + 76, credit 400) and finalized; a late call on day 0; the subscription cancelled;
day 1 (one call of its own, plus day 0's +100 carried) billed as a draft inside its grace period."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.functional.billing.conftest import START, World, assert_books_agree
from tests.functional.billing.helpers import billing_state, day, schedule
from tests.functional.billing.taxed_days import day0_billed, day1_billed
from tests.functional.billing.test_event_void_billing import _bill
from tests.functional.billing.test_grant_paid_corrections import (
    _balance,
    _remaining_of,
    _usage,
)
from tests.functional.billing.test_negative_final_invoice import _credit_notes
from tests.functional.billing.test_real_correction import api, rerun

__all__ = ["api"]  # the fixture, used by name


def _draft_carrier(real: World, monkeypatch: Any) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Day 0 billed and finalized, a late call on it, the subscription cancelled, day 1 billed as a draft
    carrying day 0's +100 (+19); then the late call voided. Returns day 0, day 1 (the draft), the grant."""

    sub_id, grant_id = day0_billed(real, monkeypatch, 800)
    day1_billed(real, monkeypatch, 5, end=True, finalize=False)  # a late call on day 0
    assert billing_state(real, sub_id).status == "ended" and grant_id is not None
    first, final = _usage(real, 0), _usage(real, 1)
    assert first["status"] == "finalized" and final["status"] == "draft", final
    adjustments = [line for line in final["lines"] if line["kind"] == "adjustment"]
    assert [(a["amount_minor"], a["references"]["invoice_id"]) for a in adjustments] == [(100, first["id"])]
    real.usage("acme", START + day(0, 4), 4)  # the late call voided
    return first, final, grant_id


def _state(real: World, grant_id: str) -> dict[str, Any]:
    invoices = real.invoices("acme")
    return {
        "invoices": sorted((i["id"], i["kind"], i["status"], i["total_minor"]) for i in invoices),
        "notes": sorted(n["id"] for i in invoices for n in _credit_notes(real, i["id"])),
        "grant": _remaining_of(grant_id),
        "receivable": _balance("receivable"),
    }


def _outcome(real: World, final_id: str, grant_id: str) -> dict[str, Any]:
    from neruba.logic.billing.credit_notes import repository

    invoices = real.invoices("acme")
    notes = [repository(real.ctx).get(str(n["id"])) or {} for n in _credit_notes(real, final_id)]
    return {
        "standalone": [i["kind"] for i in invoices if i["kind"] in ("correction", "credit_note")],
        "final_notes": sorted((int(n["subtotal_minor"]), int(n["tax_minor"])) for n in notes),
        "grant": _remaining_of(grant_id),
        "receivable": _balance("receivable"),
        "tax_payable": _balance("tax_payable"),
    }


def _correct(real: World, api: Any, via: str, first_id: str, key: str) -> Any:
    """A rerun of day 0 (its status and body), or the corrections sweep (its check's report)."""
    from datetime import timedelta

    from neruba import bootstrap
    from neruba.logic.sweeps.runner import run_sweep

    if via == "rerun":
        return rerun(api, first_id, key)
    now = START + day(1, 9)
    report = run_sweep(bootstrap.ops(), ["corrections"], now - timedelta(hours=2), now, trigger="cli",
                       actor="t", billing=bootstrap.billing, now=now)  # fmt: skip
    assert report["status"] == "ok", report
    return report["checks"][0]


@pytest.mark.parametrize("via", ["rerun", "sweep"])
def test_a_draft_carrier_finalized_first_is_the_reference(
    real: World, api: Any, monkeypatch: Any, via: str
) -> None:
    # GIVEN the draft carrier, finalized before the correction
    first, final, grant_id = _draft_carrier(real, monkeypatch)
    schedule(real, START + day(1, 8))
    # WHEN day 0 is corrected
    _correct(real, api, via, first["id"], "r")
    # THEN the grant gets its 100 back, the 19 goes back on day 1; no standalone credit
    got = _outcome(real, final["id"], grant_id)
    assert got["standalone"] == [] and got["final_notes"] == [(0, 19)], got
    assert got["grant"] == 800 - 400 - 200 + 100
    assert_books_agree(real, "acme")


@pytest.mark.parametrize("via", ["rerun", "sweep"])
def test_a_correction_waits_while_a_draft_carries_the_difference(
    real: World, api: Any, monkeypatch: Any, via: str
) -> None:
    # GIVEN day 1 a draft carrying day 0's +100 (+19), the late call voided
    first, final, grant_id = _draft_carrier(real, monkeypatch)
    before = _state(real, grant_id)

    # WHEN day 0 is corrected while day 1 is still a draft
    answer = _correct(real, api, via, first["id"], "r-early")

    # THEN nothing is settled around the draft: the rerun is refused (409), the sweep issues nothing
    if via == "rerun":
        status, body = answer
        assert status == 409, body
        assert body["error"]["code"] == "invoice_conflict", body
        assert final["id"] in body["error"]["message"], body
    else:  # reported, left for the next run: not a failure
        assert answer["repairs"] == [] and answer["details"]["failed"] == [], answer
        assert [d["invoice_id"] for d in answer["details"]["deferred"]] == [first["id"]], answer
    assert _state(real, grant_id) == before

    # WHEN the draft is finalized and the correction retried
    schedule(real, START + day(1, 8))
    assert _usage(real, 1)["status"] != "draft"
    _correct(real, api, via, first["id"], "r-late")

    # THEN as if it had been finalized first: the grant gets 100 back, the 19 goes back on day 1
    got = _outcome(real, final["id"], grant_id)
    assert got["standalone"] == [] and got["final_notes"] == [(0, 19)], got
    assert got["grant"] == 800 - 400 - 200 + 100
    assert_books_agree(real, "acme")
    # AND a second attempt changes nothing
    if via == "rerun":
        assert rerun(api, first["id"], "r-again")[1]["action"] == "unchanged"


def test_a_window_below_zero_leaves_its_negative_line_while_a_draft_carries_the_corrected_line(
    real: World, monkeypatch: Any
) -> None:
    # GIVEN 19% exclusive tax, no grant; day 0 billed 4 calls (476) and finalized; then a grace period
    # longer than a window: a late call of day 0 billed on day 1's invoice (its own call and +100), a draft
    day0_billed(real, monkeypatch)
    monkeypatch.setattr(real.ctx, "grace", timedelta(days=2))
    day1_billed(real, monkeypatch, 5, end=False, finalize=False)
    first, second = _usage(real, 0), _usage(real, 1)
    assert (first["status"], second["status"], second["subtotal_minor"]) == ("finalized", "draft", 200)

    # WHEN the late call is voided and day 2 (no call of its own) is billed while day 1 is still a draft
    real.usage("acme", START + day(0, 4), 4)
    _bill(real, START + day(3, 1), monkeypatch)

    # THEN day 2 keeps its -100 (-119 with tax) below zero: day 0, whose calls survive, is not credited
    third = _usage(real, 2)
    assert (third["subtotal_minor"], third["total_minor"]) == (-100, -119)
    assert _credit_notes(real, first["id"]) == []
    # AND once day 1 is finalized, it bills the late call it carries; the books agree throughout
    schedule(real, START + day(4, 1))
    assert _usage(real, 1)["status"] == "finalized"
    assert_books_agree(real, "acme")


def test_a_backfill_revert_waits_while_a_draft_carries_the_corrected_line(
    real: World, monkeypatch: Any
) -> None:
    from tests.functional.billing.backfill_support import act, calls, events, open_backfill, scope
    from tests.functional.billing.helpers import work
    from tests.functional.billing.test_grant_paid_tax_where import _notes_total

    # GIVEN day 0 billed and finalized, a late call on it, the subscription cancelled, day 1 a draft
    # carrying day 0's +100; then a backfill of 2 calls on day 0 committed: a correction invoice (+200)
    _sub, grant_id = day0_billed(real, monkeypatch, 800)
    day1_billed(real, monkeypatch, 5, end=True, finalize=False)
    assert grant_id is not None
    final = _usage(real, 1)
    assert final["status"] == "draft"
    status, backfill = open_backfill(scope())
    assert status == 201, backfill
    assert events(backfill["id"], calls("bf", START + day(0, 5), 2))[0] == 200
    status, committed = act(backfill["id"], "commit")
    assert (status, committed["status"]) == (200, "committed"), committed
    (correction,) = [i for i in real.invoices("acme") if i["kind"] == "correction"]
    assert correction["subtotal_minor"] == 200
    before = _state(real, grant_id)

    # WHEN the backfill is reverted while day 1 is still a draft carrying day 0's line
    status, reverting = act(backfill["id"], "revert", body={"reason": "collector replayed twice"})

    # THEN nothing is settled around the draft: the revert waits (its rest handed to the worker)
    assert status in (200, 202) and reverting["status"] == "reverting", reverting
    assert _state(real, grant_id)["invoices"] == before["invoices"]
    assert _state(real, grant_id)["notes"] == before["notes"] == []

    # WHEN the draft is finalized and the worker resumes the revert
    schedule(real, START + day(1, 8))
    work(real, START + day(1, 9), monkeypatch)

    # THEN the revert credits the correction invoice that billed the 2 calls; day 1 keeps what it
    # carries; nothing standalone; the books agree
    assert read_backfill(backfill["id"])["status"] == "reverted"
    assert [i["kind"] for i in real.invoices("acme") if i["kind"] in ("correction", "credit_note")] == [
        "correction"
    ]
    assert _credit_notes(real, final["id"]) == []
    assert _remaining_of(grant_id) == before["grant"] + 200
    assert _notes_total(real, correction["id"]) == (0, correction["tax_minor"])  # the grant paid the 200
    assert_books_agree(real, "acme")


def read_backfill(backfill_id: str) -> dict[str, Any]:
    from tests.functional.billing.backfill_support import read

    status, found = read(f"/admin/backfills/{backfill_id}", backfill_id=backfill_id)
    assert status == 200, found
    return dict(found)
