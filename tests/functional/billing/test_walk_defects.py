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
    first, (grant_id,) = _day0_paid_by(real, monkeypatch, ("g1", "promotional", 400))
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
