"""The default Stripe ports call the real ledger functions with their keywords and move invoices only
along the allowed transitions."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from neruba.dal.invoices import Invoice, InvoiceConflictError, can_transition, invoice_record
from neruba.domain.payments import PaymentRecord
from neruba.logic.stripe import ledger_effects as ledger_effects
from neruba.logic.stripe.checks import PaymentPlan
from neruba.logic.stripe.ledger_effects import LedgerEffects

AT = datetime(2026, 1, 5, tzinfo=UTC)


def _event_type(action: dict[str, Any]) -> str:
    """The webhook event type of an outbox Put (``logic.webhooks.outbox``)."""
    return str(json.loads(action["Put"]["Item"]["doc"]["S"])["type"])


class FakeInvoices:
    def __init__(self, status: str) -> None:
        self.docs: dict[str, dict[str, Any]] = {
            "in_1": {"id": "in_1", "customer_id": "acme", "status": status}
        }
        self.race: str | None = None
        self.events: list[str] = []  # webhook events committed with the invoice's change

    def get(self, invoice_id: str) -> Invoice | None:
        return invoice_record(self.docs[invoice_id]) if invoice_id in self.docs else None

    def transition(
        self, invoice_id: str, status: str, *, expected: str, extra: Sequence[dict[str, Any]] = ()
    ) -> None:
        if self.race is not None:  # another writer changes the status between read and write
            self.docs[invoice_id]["status"], self.race = self.race, None
        if self.docs[invoice_id]["status"] != expected or not can_transition(expected, status):
            raise InvoiceConflictError(invoice_id)
        self.docs[invoice_id]["status"] = status
        self.events += [_event_type(a) for a in extra]

    def payment_item(self, invoice_id: str, **change: Any) -> dict[str, Any]:
        return {"invoice_id": invoice_id, **change}

    def transact(self, actions: list[dict[str, Any]]) -> None:
        self.events += [_event_type(a) for a in actions if "Put" in a]
        for action in (a for a in actions if "Put" not in a):
            doc = self.docs[action["invoice_id"]]
            assert doc["status"] == action["status_before"]
            doc.update(status=action["status_after"], amount_paid_minor=action["paid_after"])


class NoDisputes:
    def get(self, dispute_id: str) -> None:
        return None


class FakeLedger:
    table_name = "ledger"
    disputes = NoDisputes()  # no dispute recorded by an operator

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def stored_posting(self, customer_id: str, key: str) -> object | None:
        return object() if key in self.keys else None


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    seen: list[tuple[str, dict[str, Any]]] = []
    for name in ("record_refund", "record_dispute"):
        monkeypatch.setattr(ledger_effects.ledger, name, lambda repo, _n=name, **kw: seen.append((_n, kw)))
    # the payment each refund or dispute takes back from (rules tested on moto in the Stripe tests)
    paid = PaymentRecord("acme", "ch_1", "in_1", "USD", paid_minor=10_000)
    monkeypatch.setattr(LedgerEffects, "_payment", lambda self, action, **kw: paid)

    def record_payment(repo: Any, **kw: Any) -> None:  # the posting's transaction carries the invoice update
        seen.append(("record_payment", {k: v for k, v in kw.items() if k != "extra_items"}))
        current_invoices[0].transact(kw["extra_items"])

    monkeypatch.setattr(ledger_effects.ledger, "record_payment", record_payment)
    return seen


current_invoices: list[FakeInvoices] = []


def plan(paid: int, total: int, status: str = "finalized") -> PaymentPlan:
    return PaymentPlan(
        post_minor=paid,
        status_before=status,
        status_after="paid" if paid >= total else status,
        paid_before=0,
        paid_after=paid,
        remaining_minor=total - paid,
    )


def effects(status: str = "finalized") -> tuple[LedgerEffects, FakeInvoices]:
    invoices = FakeInvoices(status)
    current_invoices[:] = [invoices]
    return LedgerEffects(FakeLedger(), invoices), invoices  # type: ignore[arg-type]


def test_invoice_paid_records_the_payment_by_charge_and_marks_the_invoice_paid(calls: Any) -> None:
    # GIVEN the default effects on a finalized invoice
    fx, invoices = effects()
    # WHEN the invoice is paid by charge ch_1
    result = fx.invoice_paid(
        invoice_id="in_1", customer_id="acme", currency="USD", amount_minor=500, stripe_invoice_id="in_s",
        payment_id="ch_1", idempotency_key="stripe:payment:ch_1", at=AT, plan=plan(500, 500),
    )  # fmt: skip
    # THEN record_payment got the real keywords and the invoice moved finalized -> paid
    assert calls == [
        (
            "record_payment",
            {"customer_id": "acme", "currency": "USD", "amount_minor": 500, "payment_id": "ch_1",
             "idempotency_key": "stripe:payment:ch_1", "source": "stripe", "actor": "stripe:webhook",
             "invoice_id": "in_1", "at": AT, "metadata": {"stripe_invoice_id": "in_s"}, "credited_minor": 0},
        )
    ]  # fmt: skip
    assert invoices.docs["in_1"]["status"] == "paid" and result.outcome == "applied"
    # AND a late payment failure leaves it paid (paid -> payment_failed is not a transition)
    late = fx.invoice_payment_failed(
        invoice_id="in_1",
        customer_id="acme",
        stripe_invoice_id="in_s",
        reason="x",
        idempotency_key="k",
        at=AT,
    )
    assert late.outcome == "skipped" and invoices.docs["in_1"]["status"] == "paid"


def test_a_failed_payment_then_a_success_ends_paid(calls: Any) -> None:
    fx, invoices = effects()
    failed = fx.invoice_payment_failed(
        invoice_id="in_1",
        customer_id="acme",
        stripe_invoice_id="in_s",
        reason="x",
        idempotency_key="k",
        at=AT,
    )
    assert failed.outcome == "applied" and invoices.docs["in_1"]["status"] == "payment_failed"
    fx.invoice_paid(
        invoice_id="in_1", customer_id="acme", currency="USD", amount_minor=5, stripe_invoice_id="in_s",
        payment_id="ch_2", idempotency_key="stripe:payment:ch_2", at=AT,
        plan=plan(5, 5, "payment_failed"),
    )  # fmt: skip
    assert invoices.docs["in_1"]["status"] == "paid"
    assert invoices.events == ["invoice.payment_failed", "invoice.paid"]  # each with its change


def test_a_status_changed_between_read_and_write_is_decided_again(calls: Any) -> None:
    # GIVEN a payment failure whose conditional write loses against a payment (status becomes paid)
    fx, invoices = effects()
    invoices.race = "paid"
    # WHEN the failure is applied
    result = fx.invoice_payment_failed(
        invoice_id="in_1",
        customer_id="acme",
        stripe_invoice_id="in_s",
        reason="x",
        idempotency_key="k",
        at=AT,
    )
    # THEN it re-reads, sees paid, and leaves it (no invoice.payment_failed: nothing moved)
    assert result.outcome == "skipped" and invoices.docs["in_1"]["status"] == "paid"
    assert invoices.events == []


def test_a_zero_payment_posts_nothing_but_marks_paid(calls: Any) -> None:
    fx, invoices = effects()
    fx.invoice_paid(
        invoice_id="in_1", customer_id="acme", currency="USD", amount_minor=0, stripe_invoice_id="in_s",
        payment_id="in_s", idempotency_key="stripe:payment:in_s", at=AT, plan=plan(0, 0),
    )  # fmt: skip
    assert calls == [] and invoices.docs["in_1"]["status"] == "paid"


def test_refunds_and_disputes_go_to_the_ledger_with_stripe_object_keys(calls: Any) -> None:
    fx, _ = effects("paid")
    common = {"invoice_id": "in_1", "customer_id": "acme", "currency": "USD", "amount_minor": 200, "at": AT}
    fx.charge_refunded(charge_id="ch_1", refund_id="re_1", idempotency_key="stripe:refund:re_1", **common)
    fx.dispute_created(
        dispute_id="dp_1", charge_id="ch_1", idempotency_key="stripe:dispute:dp_1:created", **common
    )
    fx.dispute_closed(
        dispute_id="dp_1",
        charge_id="ch_1",
        result="lost",
        idempotency_key="stripe:dispute:dp_1:lost",
        **common,
    )
    assert [(n, kw["idempotency_key"], kw.get("status"), kw.get("refund_id")) for n, kw in calls] == [
        ("record_refund", "stripe:refund:re_1", None, "re_1"),
        ("record_dispute", "stripe:dispute:dp_1:created", "created", None),
        ("record_dispute", "stripe:dispute:dp_1:lost", "lost", None),
    ]
    assert calls[1][1]["amount_minor"] == 200 and "amount_minor" not in calls[2][1]
