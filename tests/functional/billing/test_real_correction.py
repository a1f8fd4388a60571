"""Corrections after the end: a rerun of the final window of a cancelled subscription is billed on a
correction invoice of its own (a credit note when negative), issued at once, numbered, posted to the
ledger and pushed to Stripe; never left "pending" for a next invoice that will never exist.

Real pricing (1.00 per API call, daily windows), real ledger, the billing API handler, the scheduler, the
Stripe sync worker against the fake Stripe. Expected amounts are computed here from the call counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from neruba_tools.local.fake_stripe import FakeStripe
from tests.functional.billing.conftest import (
    START,
    World,
    assert_books_agree,
    invoice_postings,
    ledger,
    subscribe_real,
)
from tests.functional.billing.helpers import Killed, billing_state, day, schedule, work
from tests.support.api import api_event, call

PRICE = 100  # minor units per call
BILLED_CALLS = 12
LATE_CALLS = 7  # the walk's 700 unbilled


@pytest.fixture
def api(real: World, monkeypatch: pytest.MonkeyPatch) -> Any:
    from functions.billing_api.app import lambda_handler
    from neruba import bootstrap

    bootstrap.install(billing=real.ctx)
    return lambda_handler


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    import boto3

    from neruba.logic.stripe.secrets import clear_cache
    from neruba.settings import get_settings

    boto3.client("ssm").put_parameter(
        Name="/neruba/test/correction-stripe",
        Type="SecureString",
        Overwrite=True,
        Value='{"api_key": "sk_test_x", "webhook_secrets": ["whsec_x"]}',
    )
    monkeypatch.setenv("NERUBA_STRIPE_SECRET_NAME", "/neruba/test/correction-stripe")
    get_settings.cache_clear()
    clear_cache()
    with FakeStripe() as server:
        monkeypatch.setenv("NERUBA_STRIPE_API_BASE", server.url)
        yield server
    clear_cache()
    get_settings.cache_clear()


def ended(real: World, monkeypatch: Any) -> dict[str, Any]:
    """acme cancelled at day 0 + 20h after 12 calls; the final window billed and finalized."""
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    sub = subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), BILLED_CALLS)
    cancel(real.plans, sub["id"], Cancellation(at_period_end=False), now=START + day(0, 20))
    schedule(real, START + day(0, 21))
    work(real, START + day(0, 21), monkeypatch)
    schedule(real, START + day(0, 23))
    assert billing_state(real, sub["id"]).status == "ended"
    final = real.invoices("acme")[-1]
    assert (final["status"], final["total_minor"]) == ("finalized", BILLED_CALLS * PRICE)
    return final


def rerun(api: Any, invoice_id: str, key: str) -> tuple[int, Any]:
    event = api_event(
        "POST",
        f"/admin/invoices/{invoice_id}/rerun",
        body={"reason": "late usage after the cancellation"},
        path_parameters={"invoice_id": invoice_id},
        headers={"Idempotency-Key": key},
    )
    status, body, _ = call(api, event)
    return status, body


def explain(api: Any, invoice_id: str) -> Any:
    event = api_event(
        "GET", f"/v1/invoices/{invoice_id}/explain", path_parameters={"invoice_id": invoice_id}, scopes="read"
    )
    status, body, _ = call(api, event)
    assert status == 200, body
    return body


def sync_all() -> None:
    from functions.stripe_sync.app import lambda_handler
    from tests.support.aws import queue_url
    from tests.support.queues import drain

    drain(lambda_handler, queue_url("StripeSyncQueue"), batch_size=10)


def test_late_usage_on_the_final_window_is_billed_on_a_correction_invoice(
    real: World, api: Any, fake: FakeStripe, monkeypatch: Any
) -> None:
    # GIVEN the final window of a cancelled subscription billed (12 calls) and finalized
    final = ended(real, monkeypatch)
    sync_all()
    # WHEN 7 late calls land in it and an operator reruns it (then again, with another key)
    real.usage("acme", START + day(0, 4), BILLED_CALLS + LATE_CALLS)
    status, result = rerun(api, final["id"], "rr-1")
    again_status, again = rerun(api, final["id"], "rr-2")

    # THEN the answer names a correction invoice, issued now; nothing is promised to a next invoice
    assert status == 200, result
    assert result["action"] == "correction_invoiced"
    correction = result["correction"]
    assert (correction["type"], correction["amount_minor"]) == ("correction_invoice", LATE_CALLS * PRICE)
    assert "next invoice" not in str(result)
    # AND the second rerun finds nothing left to bill
    assert again_status == 200 and again["action"] == "unchanged"
    # AND the correction invoice is finalized and numbered after the original, with one adjustment line
    invoices = real.invoices("acme")
    (doc,) = [i for i in invoices if i["kind"] == "correction"]
    assert doc["id"] == correction["invoice_id"]
    assert (doc["status"], doc["number"], doc["total_minor"]) == (
        "finalized",
        "INV-000003",
        LATE_CALLS * PRICE,
    )
    assert doc["corrects"] == {"invoice_id": final["id"], "number": final["number"]}
    (line,) = doc["lines"]
    assert (line["kind"], line["quantity"], line["amount_minor"]) == (
        "adjustment",
        LATE_CALLS,
        LATE_CALLS * PRICE,
    )
    # AND the ledger carries it once; the receivable is every call counted
    corrections = [p for p in invoice_postings("acme") if p.source_id == doc["id"]]
    assert [(p.reason, p.total_minor) for p in corrections] == [("invoice", LATE_CALLS * PRICE)]
    assert_books_agree(real, "acme")
    # AND explain shows the original invoice and the adjustment's units
    (explained,) = explain(api, doc["id"])["lines"]
    assert explained["original"] == {
        "invoice_id": final["id"],
        "number": final["number"],
        "line_id": line["references"]["line_id"],
    }
    assert explained["aggregate"]["quantity"] == str(LATE_CALLS)  # decimals are strings in answers
    # AND it is pushed to Stripe like any invoice, with its own total
    sync_all()
    (theirs,) = [i for i in fake.invoices.values() if i["metadata"]["neruba_invoice_id"] == doc["id"]]
    assert theirs["total"] == LATE_CALLS * PRICE and theirs["status"] == "open"


def test_a_negative_correction_after_the_end_credits_the_invoice_it_corrects(
    real: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN the final window billed with 12 calls (unpaid), later recounted as 10
    final = ended(real, monkeypatch)
    counted = 10
    real.usage("acme", START + day(0, 4), counted)
    # WHEN an operator reruns it
    status, result = rerun(api, final["id"], "rr-neg")
    # THEN a credit note of 200 is issued against the final invoice (no invoice of its own), posted as a
    # credit note; the invoice and the receivable ask for the 10 calls
    assert status == 200 and result["action"] == "correction_invoiced", result
    correction = result["correction"]
    assert (correction["type"], correction["invoice_id"], correction["amount_minor"]) == (
        "credit_note",
        None,
        (counted - BILLED_CALLS) * PRICE,
    )
    (note,) = correction["credit_notes"]
    assert (note["invoice_id"], note["amount_minor"]) == (final["id"], (BILLED_CALLS - counted) * PRICE)
    assert [i for i in real.invoices("acme") if i["kind"] == "credit_note"] == []
    stored = real.ctx.invoices.get(final["id"])
    assert stored is not None and int(stored.document["amount_remaining_minor"]) == counted * PRICE
    found, _ = ledger().postings("acme", 100)
    postings = [p for p in found if p.source_id == note["id"]]
    assert [(p.reason, p.total_minor) for p in postings] == [
        ("credit_note", (BILLED_CALLS - counted) * PRICE)
    ]
    assert ledger().balances("acme")["USD"]["receivable"] == counted * PRICE
    assert ledger().reconcile("acme") == []


def test_a_rerun_killed_after_its_transaction_is_finished_by_the_scheduler_once(
    real: World, api: Any, monkeypatch: Any
) -> None:
    from neruba.logic.billing import finalize as billing_finalize

    # GIVEN late calls on the final window, and a rerun killed right after its transaction committed
    final = ended(real, monkeypatch)
    real.usage("acme", START + day(0, 4), BILLED_CALLS + LATE_CALLS)

    def killed(*args: Any, **kwargs: Any) -> None:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(billing_finalize, "finalize_invoice", killed)
        with pytest.raises(Killed):
            rerun(api, final["id"], "rr-crash")
    # WHEN the operator retries (same key) and the scheduler runs
    status, result = rerun(api, final["id"], "rr-crash")
    retried_other = rerun(api, final["id"], "rr-other")[1]
    schedule(real, START + day(1, 2))
    # THEN one correction invoice of 700, finalized and numbered once, posted once
    assert status == 200 and result["action"] == "correction_invoiced", result
    assert retried_other["action"] == "unchanged"
    corrections = [i for i in real.invoices("acme") if i["kind"] == "correction"]
    assert [(i["status"], i["number"], i["total_minor"]) for i in corrections] == [
        ("finalized", "INV-000003", LATE_CALLS * PRICE)
    ]
    assert len([p for p in invoice_postings("acme") if p.source_id == corrections[0]["id"]]) == 1
    assert_books_agree(real, "acme")


def test_late_events_after_the_end_are_billed_by_the_sweep_without_a_rerun(
    real: World, api: Any, monkeypatch: Any
) -> None:
    from datetime import timedelta

    from neruba import bootstrap
    from neruba.logic.sweeps.runner import run_sweep

    # GIVEN the final window of a cancelled subscription finalized, then 7 late calls land in it
    final = ended(real, monkeypatch)
    real.usage("acme", START + day(0, 4), BILLED_CALLS + LATE_CALLS)
    now = START + day(2)

    def sweep() -> dict[str, Any]:
        report = run_sweep(
            bootstrap.ops(),
            ["corrections"],
            now - timedelta(hours=2),
            now,
            trigger="cli",
            actor="t",
            billing=bootstrap.billing,  # the ``real`` context, installed by its fixture
            now=now,
        )
        assert report["status"] == "ok", report
        check: dict[str, Any] = report["checks"][0]
        return check

    # WHEN the sweep runs (twice)
    first, second = sweep(), sweep()
    # THEN the first bills the 7 calls on a correction invoice, the second finds nothing
    (repair,) = first["repairs"]
    assert (repair["kind"], repair["corrects"]) == ("correction_invoiced", final["id"])
    assert second["repairs"] == [] and second["found"] == 0
    (doc,) = [i for i in real.invoices("acme") if i["kind"] == "correction"]
    assert (doc["id"], doc["status"], doc["total_minor"]) == (
        repair["invoice_id"],
        "finalized",
        LATE_CALLS * PRICE,
    )
    # AND a rerun afterwards has nothing left to bill
    assert rerun(api, final["id"], "rr-after")[1]["action"] == "unchanged"
    assert_books_agree(real, "acme")
