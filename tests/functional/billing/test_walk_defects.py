"""Defects an HTTP walk found (issue 23), each pinned: a void refusal naming what carries a correction,
``voided_events`` per adjustment line, the credit notes that settled a revert or rerun, and the tax rates
an invoice lists."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day, schedule
from tests.functional.billing.test_event_void_billing import _bill, _void
from tests.functional.billing.test_grant_paid_corrections import _day0_paid_by
from tests.functional.billing.test_real_correction import api, rerun

__all__ = ["api"]  # the fixture, used by name


def test_a_void_refusal_after_a_grant_only_correction_names_the_correction_not_the_invoice(
    real: World, api: Any, monkeypatch: Any
) -> None:
    from neruba.errors import ConflictError
    from neruba.logic.billing.void import void_invoice
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.billing import InvoiceVoid
    from neruba.models.catalog import Cancellation

    # GIVEN day 0 paid by a grant, the subscription ended, two calls voided and day 0 rerun: the grant
    # takes the correction whole (no invoice, no credit note)
    first, _grants = _day0_paid_by(real, monkeypatch, ("g1", "promotional", 400))
    cancel(real.plans, str(real.subscriptions[0]["id"]), Cancellation(at_period_end=False),
           now=START + day(1, 5))  # fmt: skip
    _bill(real, START + day(1, 6), monkeypatch)
    schedule(real, START + day(1, 8))
    assert _void("a", START + day(1, 9), "v1")["correction"] == "completed"
    assert _void("b", START + day(1, 9), "v2")["correction"] == "completed"
    status, taken = rerun(api, first["id"], "rr")
    assert status == 200 and taken["correction"]["type"] == "grant_restoration", taken
    correction_id = str(taken["correction"]["correction_id"])

    # WHEN day 0 is voided
    with pytest.raises(ConflictError) as refused:
        void_invoice(real.ctx, first["id"], InvoiceVoid(reason="wrong"), "key:t", "vd1")

    # THEN the refusal names the correction that carries the difference (given back to the grant), never
    # day 0 itself as the invoice that billed it
    assert refused.value.code == "invoice_has_adjustments"
    message = str(refused.value)
    assert first["id"] not in message, message
    assert correction_id in message and "grant" in message, message
    (detail,) = refused.value.details or []
    assert detail["carried_by"] == {"type": "correction", "id": correction_id, "invoice_id": None}, detail
    assert detail["status"] == "applied" and detail["line_id"] == "usage:api_calls::0", detail
    # AND the API answers the same 409, its details naming the carrier
    from tests.support.api import api_event, call

    path = f"/admin/invoices/{first['id']}/void"
    body = {"regenerate": "same_lines", "reason": "wrong"}
    named = {"invoice_id": first["id"]}
    event = api_event("POST", path, body=body, path_parameters=named, headers={"Idempotency-Key": "vd2"})
    status, answer, _ = call(api, event)
    assert (status, answer["error"]["code"]) == (409, "invoice_has_adjustments"), answer
    assert [d["carried_by"]["id"] for d in answer["error"]["details"]] == [correction_id]


def test_voided_events_of_an_adjustment_line_are_only_those_its_difference_came_from(
    real: World, monkeypatch: Any
) -> None:
    from tests.functional.billing.conftest import subscribe_real
    from tests.functional.billing.test_event_void_billing import _events, _explain
    from tests.functional.billing.test_grant_paid_corrections import _usage

    # GIVEN day 0 billed 4 calls; "a" voided, day 1 billed (its adjustment: -100); then "b" voided and
    # day 2 billed (another adjustment of the same line: -100)
    subscribe_real(real, "acme")
    _events("a", "b", "c", "d", at=START + day(0, 4))
    _bill(real, START + day(1, 1), monkeypatch)
    schedule(real, START + day(1, 3))
    _events("x", "y", at=START + day(1, 1))
    assert _void("a", START + day(1, 4), "v1")["correction"] == "completed"
    _bill(real, START + day(2, 1), monkeypatch)
    _events("z", at=START + day(2, 1))
    assert _void("b", START + day(2, 4), "v2")["correction"] == "completed"
    _bill(real, START + day(3, 1), monkeypatch)

    def cited(invoice: dict[str, Any]) -> list[list[str]]:
        lines = [line for line in _explain(invoice["id"])["lines"] if line["kind"] == "adjustment"]
        return [sorted(v["transaction_id"] for v in line["voided_events"]) for line in lines]

    # THEN each adjustment line cites the void its difference came from, not every void of the period
    assert cited(_usage(real, 1)) == [["a"]]
    assert cited(_usage(real, 2)) == [["b"]]


def test_a_revert_settled_by_a_credit_note_names_the_note(real: World, monkeypatch: Any) -> None:
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation
    from neruba.timefmt import ts
    from tests.functional.billing.backfill_support import act, live_events
    from tests.functional.billing.conftest import subscribe_real
    from tests.functional.billing.helpers import work
    from tests.functional.billing.test_backfill_attribution import _hold, _open

    # GIVEN a subscription ended on day 0 (its final invoice billed), then an add backfill of one call of
    # day 0 committed: correction invoice A (+100)
    sub = subscribe_real(real, "acme")
    live_events(real, ["s0-0"], START + day(0, 2), "live-0")
    cancel(real.plans, sub["id"], Cancellation(at_period_end=False), now=START + day(0, 20))
    schedule(real, START + day(0, 21))
    work(real, START + day(0, 21), monkeypatch)
    schedule(real, START + day(0, 23))
    backfill = _open("bf-a", reason="collector down", last=20)
    _hold(backfill, "a-1", 6)
    committed = act(backfill, "commit", key="ca")[1]
    [correction] = [i for i in real.invoices("acme") if i["kind"] == "correction"]

    # WHEN the backfill is reverted (its rerun credits A whole by a credit note: no invoice of its own)
    status, done = act(backfill, "revert", key="ra", body={"reason": "imported twice"})
    assert status == 200, done

    # THEN the row names the credit note that settled it; the commit's row names none
    day0 = {i["id"] for i in real.invoices("acme") if i["period_start"] == ts(START)}
    [row] = [r for r in done["reverted"]["invoices"] if r["invoice_id"] in day0]
    notes = list((real.ctx.invoices.get(correction["id"]).document.get("credit_notes")) or [])  # type: ignore[union-attr]
    assert [n["id"] for n in notes] and row["correction_invoice_id"] is None, row
    assert row["credit_note_ids"] == [n["id"] for n in notes], row
    [added] = [r for r in committed["committed"]["invoices"] if r["invoice_id"] in day0]
    assert (added["correction_invoice_id"], added["credit_note_ids"]) == (correction["id"], [])
    # AND reading the backfill answers the same
    from tests.functional.billing.backfill_support import read

    _, shown = read(f"/admin/backfills/{backfill}", backfill_id=backfill)
    [again] = [r for r in shown["reverted"]["invoices"] if r["invoice_id"] in day0]
    assert again["credit_note_ids"] == row["credit_note_ids"]


def test_an_invoice_lists_only_the_tax_rates_that_tax_one_of_its_lines(
    world: World, monkeypatch: Any
) -> None:
    from functions.billing_api.app import lambda_handler
    from neruba import bootstrap
    from neruba.logic.catalog.entries import create_plan
    from neruba.models.catalog import PlanCreate
    from tests.functional.billing.conftest import BASIC
    from tests.functional.billing.test_discounts_taxes import VAT, _bill, _post
    from tests.support.api import api_event, call

    # GIVEN a rate for plan basic (acme's) and two for plan metered (not on any of acme's invoices)
    bootstrap.install(billing=world.ctx)
    create_plan(world.plans, PlanCreate.model_validate({**BASIC, "code": "metered", "name": "Metered"}))
    _, basic = _post(
        lambda_handler, "/admin/tax-rates", {**VAT, "country": None, "plan_code": "basic"}, "t-1"
    )
    for n, percent in enumerate(("7", "5")):
        body = {**VAT, "percentage": percent, "country": None, "plan_code": "metered"}
        assert _post(lambda_handler, "/admin/tax-rates", body, f"t-m{n}")[0] == 201
    # WHEN acme's opening (no line) and a day of usage (plan basic) are billed
    _bill(world, monkeypatch, 1)

    # THEN each invoice read lists only the rates that tax one of its lines: basic's on the usage invoice,
    # none on the opening
    def read(invoice_id: str) -> Any:
        path = f"/v1/invoices/{invoice_id}"
        event = api_event("GET", path, path_parameters={"invoice_id": invoice_id}, scopes="read")
        status, body, _ = call(lambda_handler, event)
        assert status == 200, body
        return body

    shown = {i["kind"]: read(i["id"]) for i in world.invoices("acme")}
    assert [r["id"] for r in shown["usage"]["tax_rates"]] == [basic["id"]]
    assert shown["opening"].get("tax_rates", []) == []
    listed = call(
        lambda_handler, api_event("GET", "/v1/invoices", query={"customer_id": "acme"}, scopes="read")
    )[1]
    assert sorted(len(i.get("tax_rates") or []) for i in listed["data"]) == [0, 1]
    # AND the stored invoice keeps every rate in force when it was billed (a correction of it taxes with them)
    [usage] = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    assert len(usage["tax_rates"]) == 3
