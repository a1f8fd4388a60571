"""A void or amend of an event in an invoiced period is billed as a late event is: an adjustment line on
the subscription's next invoice while it is billed, a correction invoice (or credit note) after its end;
explain cites the voids behind the adjustment. Real pricing (1.00 per API call, daily windows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.functional.billing.conftest import START, World, assert_books_agree, ledger, subscribe_real
from tests.functional.billing.helpers import billing_state, day, schedule, work
from tests.support.api import api_event, call


def _bill(world: World, at: datetime, monkeypatch: Any) -> None:
    schedule(world, at)
    work(world, at, monkeypatch)


def _events(*txs: str, at: datetime) -> None:
    """Events counted by the real worker (queued as the API would, dated in the test's past)."""
    from functions.ingest_worker import app
    from neruba.dal.queue import send_batch
    from neruba.logic.ingest.api import queue_message
    from neruba.models.events import UsageEventIn
    from tests.support.aws import queue_url
    from tests.support.queues import drain

    messages = [
        (
            str(i),
            queue_message(
                UsageEventIn.model_validate(
                    {
                        "transaction_id": tx,
                        "customer_id": "acme",
                        "code": "api_calls",
                        "timestamp": at.isoformat(),
                    }
                ),
                "r",
                i,
                at,
            ),
        )
        for i, tx in enumerate(txs)
    ]
    assert send_batch(queue_url("IngestQueue"), messages) == []
    drain(app.lambda_handler, queue_url("IngestQueue"))


def _void(tx: str, now: datetime, key: str, **amend: Any) -> dict[str, Any]:
    from neruba.logic.ingest.voids import VoidRequest, void_event

    request = VoidRequest("acme", tx, "sent in error", "FIN-7", amend=bool(amend), **amend)
    return void_event(request, "key:op", key, now=now)


def _explain(invoice_id: str) -> Any:
    from functions.billing_api.app import lambda_handler

    path = f"/v1/invoices/{invoice_id}/explain"
    status, body, _ = call(
        lambda_handler, api_event("GET", path, path_parameters={"invoice_id": invoice_id}, scopes="read")
    )
    assert status == 200, body
    return body


def test_a_void_in_a_finalized_period_is_an_adjustment_on_the_next_invoice_citing_it(
    real: World, monkeypatch: Any
) -> None:
    subscribe_real(real, "acme")
    _events("a", "b", "c", "d", at=START + day(0, 4))
    _bill(real, START + day(1, 1), monkeypatch)
    schedule(real, START + day(1, 3))
    first = real.invoices("acme")[1]
    assert (first["status"], first["subtotal_minor"]) == ("finalized", 400)

    # WHEN one event is voided and another amended to the next day (which has 2 calls of its own), then
    # day 1 is billed
    _events("x", "y", at=START + day(1, 1))
    assert _void("a", START + day(1, 4), "v1")["correction"] == "completed"
    amended = _void("b", START + day(1, 5), "v2", timestamp=START + day(1, 2))
    assert amended["correction"] == "completed"
    _bill(real, START + day(2, 1), monkeypatch)

    # THEN day 1's invoice takes 2 calls back from day 0 and bills the amended copy in day 1 (it stays
    # above zero: the difference is a line of it; below zero, see test_negative_window_invoice)
    second = real.invoices("acme")[2]
    (adjustment,) = [line for line in second["lines"] if line["kind"] == "adjustment"]
    assert (adjustment["quantity"], adjustment["amount_minor"]) == (-2, -200)
    assert adjustment["references"]["invoice_id"] == first["id"]
    (usage,) = [line for line in second["lines"] if line["kind"] == "usage"]
    assert (usage["quantity"], usage["amount_minor"]) == (3, 300)
    assert second["subtotal_minor"] == 100
    # AND explain cites both corrections on the adjustment line
    explained = _explain(second["id"])
    (line,) = [line for line in explained["lines"] if line["kind"] == "adjustment"]
    cited = {v["transaction_id"]: v for v in line["voided_events"]}
    assert sorted(cited) == ["a", "b"]
    assert (cited["a"]["kind"], cited["a"]["ticket"]) == ("void", "FIN-7")
    assert cited["b"]["amended_by"] == amended["amended_by"]["transaction_id"]
    # AND billing again finds nothing more
    _bill(real, START + day(3, 1), monkeypatch)
    third = real.invoices("acme")[3]
    assert [line["kind"] for line in third["lines"]] == ["usage"]
    assert_books_agree(real, "acme")


def test_a_void_after_the_subscription_ended_credits_the_final_invoice(real: World, monkeypatch: Any) -> None:
    from neruba.logic.billing.corrections import late_corrections
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    sub = subscribe_real(real, "acme")
    _events("a", "b", "c", at=START + day(0, 4))
    cancel(real.plans, sub["id"], Cancellation(at_period_end=False), now=START + day(0, 20))
    _bill(real, START + day(0, 21), monkeypatch)
    schedule(real, START + day(0, 23))
    assert billing_state(real, sub["id"]).status == "ended"
    final = real.invoices("acme")[-1]
    assert (final["status"], final["total_minor"]) == ("finalized", 300)

    _void("a", START + day(1, 1), "v1")
    issued = late_corrections(real.ctx, "acme", START + day(1, 2))
    assert len(issued) == 1 and issued[0]["corrects"] == final["id"]
    # the final invoice, unpaid, still carries the voided call: a credit note against it, no invoice
    (note_id,) = issued[0]["credit_notes"]
    assert issued[0]["invoice_id"] is None
    note = real.ctx.billing.credit_notes.get(note_id)
    assert note is not None and (note["invoice_id"], note["amount_minor"]) == (final["id"], 100)
    assert late_corrections(real.ctx, "acme", START + day(1, 3)) == []  # once
    stored = real.ctx.invoices.get(final["id"])
    assert stored is not None and int(stored.document["amount_remaining_minor"]) == 200
    assert ledger().balances("acme")["USD"]["receivable"] == 200
    assert ledger().reconcile("acme") == []


@pytest.mark.parametrize("days", [37])
def test_a_void_past_the_late_event_horizon_is_refused(real: World, monkeypatch: Any, days: int) -> None:
    from neruba.errors import ConflictError

    subscribe_real(real, "acme")
    _events("a", at=START + day(0, 4))
    with pytest.raises(ConflictError) as refused:
        _void("a", START + day(days), "v1")
    assert refused.value.code == "event_too_old_to_void"
