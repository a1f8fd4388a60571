"""What the grants that paid corrected usage got back is audited (docs/billing.md, "Usage a credit grant
paid, corrected"): a window's ``invoice.settle`` lists the restorations next to its credit notes and is
written when the grants take the whole of it too; an operator's rerun records them on ``invoice.rerun``;
the corrections sweep's repair names them. Real pricing (1.00 per API call, daily windows)."""

from __future__ import annotations

from typing import Any

from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day, schedule
from tests.functional.billing.test_event_void_billing import _bill, _events, _void
from tests.functional.billing.test_grant_paid_corrections import _day0_paid_by, _usage
from tests.functional.billing.test_negative_final_invoice import _credit_notes
from tests.functional.billing.test_real_correction import api, rerun

__all__ = ["api"]


def _audited(action: str, target: str) -> list[dict[str, Any]]:
    from neruba import bootstrap

    records, _ = bootstrap.audit().list("acme", limit=100)
    return [r for r in records if r["action"] == action and r["target"] == target]


def _restored(record: dict[str, Any]) -> list[tuple[str, str, int, int, str]]:
    return [
        (r["invoice_id"], r["grant_id"], r["amount_minor"], r["tax_minor"], r["posting_id"])
        for r in record["after"]["grant_restorations"]
    ]


def test_a_window_whose_grants_take_the_whole_difference_writes_its_settlement_audit(
    real: World, monkeypatch: Any
) -> None:
    # GIVEN day 0 paid by a grant, two calls voided, day 1 with three calls (stays above zero)
    first, (grant_id,) = _day0_paid_by(real, monkeypatch, ("g1", "purchased", 400))
    for n, tx in enumerate("ab"):
        assert _void(tx, START + day(1, 4), f"v{n}")["correction"] == "completed"
    _events("e", "f", "g", at=START + day(1, 2))
    # WHEN day 1 is billed (and its job delivered again)
    _bill(real, START + day(2, 1), monkeypatch)
    _bill(real, START + day(2, 1), monkeypatch)
    # THEN one invoice.settle names the grant, the amount, its tax and the posting; no note
    second = _usage(real, 1)
    (record,) = _audited("invoice.settle", second["id"])
    (restored,) = second["grant_restorations"]
    assert _restored(record) == [(first["id"], grant_id, 200, 0, restored["posting_id"])]
    assert record["after"]["credit_notes"] == []
    assert record["actor"] == "system:billing"


def test_a_window_settled_by_notes_and_grants_audits_both(real: World, monkeypatch: Any) -> None:
    # GIVEN day 0 (400) paid 250 by a grant; three calls voided, one call on day 1 (below zero)
    first, (grant_id,) = _day0_paid_by(real, monkeypatch, ("g1", "promotional", 250))
    for n, tx in enumerate("abc"):
        assert _void(tx, START + day(1, 4), f"v{n}")["correction"] == "completed"
    _events("e", at=START + day(1, 2))
    _bill(real, START + day(2, 1), monkeypatch)
    # THEN the settlement's audit lists the note (150) and what the grant got back (150)
    second = _usage(real, 1)
    (record,) = _audited("invoice.settle", second["id"])
    (note,) = _credit_notes(real, first["id"])
    assert [n["id"] for n in record["after"]["credit_notes"]] == [note["id"]]
    (restored,) = second["grant_restorations"]
    assert _restored(record) == [(first["id"], grant_id, 150, 0, restored["posting_id"])]


def _ended_then_two_voids(real: World, monkeypatch: Any) -> tuple[dict[str, Any], str]:
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    first, (grant_id,) = _day0_paid_by(real, monkeypatch, ("g1", "promotional", 400))
    cancel(
        real.plans, str(real.subscriptions[0]["id"]), Cancellation(at_period_end=False), now=START + day(1, 5)
    )
    _bill(real, START + day(1, 6), monkeypatch)
    schedule(real, START + day(1, 8))
    assert _void("a", START + day(1, 9), "v1")["correction"] == "completed"
    assert _void("b", START + day(1, 9), "v2")["correction"] == "completed"
    return first, grant_id


def test_an_operators_rerun_after_the_end_audits_what_the_grants_got_back(
    real: World, api: Any, monkeypatch: Any
) -> None:
    first, grant_id = _ended_then_two_voids(real, monkeypatch)
    status, taken = rerun(api, first["id"], "rr")
    assert (status, taken["correction"]["type"]) == (200, "grant_restoration"), taken
    (record,) = _audited("invoice.rerun", first["id"])
    (restored,) = taken["correction"]["grant_restorations"]
    assert record["after"]["action"] == "correction_invoiced"
    assert _restored(record) == [(first["id"], grant_id, 200, 0, restored["posting_id"])]


def test_the_corrections_sweep_repair_names_what_the_grants_got_back(real: World, monkeypatch: Any) -> None:
    from neruba.logic.billing.corrections import late_corrections

    first, grant_id = _ended_then_two_voids(real, monkeypatch)
    (issued,) = late_corrections(real.ctx, "acme", START + day(1, 10))
    assert (issued["invoice_id"], issued["credit_notes"]) == (None, [])
    (restored,) = issued["grant_restorations"]
    assert (restored["invoice_id"], restored["grant_id"], restored["amount_minor"]) == (
        first["id"],
        grant_id,
        200,
    )
    assert restored["posting_id"]
    # AND the customer's audit trail has the sweep's correction (once, after a second sweep too), naming
    # what the grants got back
    assert late_corrections(real.ctx, "acme", START + day(1, 11)) == []
    (record,) = _audited("invoice.correct", first["id"])
    assert record["actor"] == "system:sweep"
    assert _restored(record) == [(first["id"], grant_id, 200, 0, restored["posting_id"])]
    assert record["after"]["invoice_id"] is None and record["after"]["credit_notes"] == []


def test_a_correction_the_grants_take_whole_is_named_as_a_correction_not_an_invoice(
    real: World, api: Any, monkeypatch: Any
) -> None:
    from tests.functional.billing.conftest import ledger
    from tests.functional.billing.test_event_void_billing import _explain

    first, grant_id = _ended_then_two_voids(real, monkeypatch)
    status, taken = rerun(api, first["id"], "rr")
    assert status == 200, taken
    correction = taken["correction"]
    # THEN the answer names the correction's id, which is no invoice
    correction_id = correction["correction_id"]
    assert correction["invoice_id"] is None and real.ctx.invoices.get(correction_id) is None
    # AND explain types the source of what the grant got back: a correction, no invoice to GET
    (line,) = [line for line in _explain(first["id"])["lines"] if line["kind"] == "usage"]
    (given,) = line["grant_restorations"]
    assert given["source"] == {
        "type": "correction",
        "id": correction_id,
        "invoice_id": None,
        "revision": None,
    }
    assert given["source_id"] == correction_id
    # AND the posting's guard key and metadata keep naming it (idempotency unchanged)
    (posting,) = [p for p in ledger().postings("acme", 100)[0] if p.reason == "credit_grant_restored"]
    assert posting.metadata["correction_id"] == correction_id
    assert posting.idempotency_key == f"grant_restore:{correction_id}:{grant_id}"


def test_a_window_restoration_is_named_by_the_window_invoice(real: World, monkeypatch: Any) -> None:
    from tests.functional.billing.test_event_void_billing import _explain

    first, _ids = _day0_paid_by(real, monkeypatch, ("g1", "purchased", 400))
    for n, tx in enumerate("ab"):
        assert _void(tx, START + day(1, 4), f"v{n}")["correction"] == "completed"
    _events("e", "f", "g", at=START + day(1, 2))
    _bill(real, START + day(2, 1), monkeypatch)
    second = _usage(real, 1)
    (line,) = [line for line in _explain(first["id"])["lines"] if line["kind"] == "usage"]
    (given,) = line["grant_restorations"]
    assert given["source"] == {
        "type": "invoice",
        "id": second["id"],
        "invoice_id": second["id"],
        "revision": None,
    }


def test_every_invoice_read_carries_grant_restorations_documented_and_typed(
    real: World, monkeypatch: Any
) -> None:
    import json
    from pathlib import Path

    from neruba.logic.billing.invoices import public
    from neruba_client import models

    # GIVEN day 0 paid by a grant (no restoration on it) and day 1 giving 200 back to the grant
    first, (grant_id,) = _day0_paid_by(real, monkeypatch, ("g1", "purchased", 400))
    for n, tx in enumerate("ab"):
        assert _void(tx, START + day(1, 4), f"v{n}")["correction"] == "completed"
    _events("e", "f", "g", at=START + day(1, 2))
    _bill(real, START + day(2, 1), monkeypatch)
    plain, carrying = (real.ctx.invoices.get(i["id"]) for i in (first, _usage(real, 1)))
    assert plain is not None and carrying is not None
    # THEN an invoice read always has the field: empty when none, the restorations when some
    assert public(plain)["grant_restorations"] == []
    # AND the documented model and the client's read both, typed
    schema = json.loads(Path("docs/openapi.json").read_text())["components"]["schemas"]["Invoice"]
    assert "grant_restorations" in schema["properties"]
    assert models.Invoice.model_validate(public(plain)).grant_restorations == []
    (restored,) = models.Invoice.model_validate(public(carrying)).grant_restorations
    assert (restored.grant_id, restored.amount_minor) == (grant_id, 200)
