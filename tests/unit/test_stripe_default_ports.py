"""The default Stripe ports call the ledger and invoices modules by their contract names."""

from __future__ import annotations

import sys
import types
from datetime import UTC, datetime
from typing import Any

import pytest

from neruba.logic import stripe_ports

AT = datetime(2026, 1, 5, tzinfo=UTC)


class FakeInvoicesRepository:
    docs: dict[str, dict[str, Any]] = {}

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def get(self, invoice_id: str) -> dict[str, Any] | None:
        return self.docs.get(invoice_id)

    def set_status(self, invoice_id: str, status: str, *, expected: str) -> None:
        assert self.docs[invoice_id]["status"] == expected
        self.docs[invoice_id]["status"] = status

    def set_sync(self, invoice_id: str, sync: dict[str, Any]) -> None:
        self.docs[invoice_id]["stripe"] = sync


@pytest.fixture
def contract_modules(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    ledger = types.ModuleType("neruba.logic.ledger")
    for name in ("record_payment", "record_refund", "record_dispute"):
        setattr(ledger, name, lambda _n=name, **kw: calls.append((_n, kw)))
    invoices = types.ModuleType("neruba.dal.invoices")
    invoices.InvoicesRepository = FakeInvoicesRepository  # type: ignore[attr-defined]
    FakeInvoicesRepository.docs = {"in_1": {"id": "in_1", "status": "finalized"}}
    monkeypatch.setitem(sys.modules, "neruba.logic.ledger", ledger)
    monkeypatch.setitem(sys.modules, "neruba.dal.invoices", invoices)
    stripe_ports.configure(effects=None, invoices=None)
    return calls


def test_invoice_paid_records_the_payment_with_the_key_and_marks_the_invoice_paid(
    contract_modules: list[tuple[str, dict[str, Any]]],
) -> None:
    # GIVEN the default effects (no override configured)
    effects = stripe_ports.effects()
    # WHEN an invoice is paid
    result = effects.invoice_paid(
        invoice_id="in_1", customer_id="acme", currency="USD", amount_minor=500, stripe_invoice_id="in_s",
        idempotency_key="stripe:evt_1", at=AT,
    )  # fmt: skip
    # THEN record_payment got the contract's keywords and the invoice moved finalized -> paid
    expected = {"customer_id": "acme", "invoice_id": "in_1", "currency": "USD", "amount_minor": 500, "at": AT,
                "idempotency_key": "stripe:evt_1", "source": "stripe", "actor": "stripe:webhook"}  # fmt: skip
    assert contract_modules == [("record_payment", expected)]
    assert FakeInvoicesRepository.docs["in_1"]["status"] == "paid" and result.outcome == "applied"
    # AND a late payment failure leaves it paid
    late = effects.invoice_payment_failed(
        invoice_id="in_1",
        customer_id="acme",
        stripe_invoice_id="in_s",
        reason="x",
        idempotency_key="k",
        at=AT,
    )
    assert late.outcome == "skipped" and FakeInvoicesRepository.docs["in_1"]["status"] == "paid"


def test_refunds_and_disputes_go_to_the_ledger(contract_modules: list[tuple[str, dict[str, Any]]]) -> None:
    effects = stripe_ports.effects()
    common = {"invoice_id": "in_1", "customer_id": "acme", "currency": "USD", "amount_minor": 200, "at": AT}
    effects.charge_refunded(
        charge_id="ch_1", refund_id="re_1", idempotency_key="stripe:refund:re_1", **common
    )
    effects.dispute_created(dispute_id="dp_1", charge_id="ch_1", idempotency_key="stripe:evt_2", **common)
    effects.dispute_closed(
        dispute_id="dp_1", charge_id="ch_1", result="lost", idempotency_key="stripe:evt_3", **common
    )
    assert [(name, kw["idempotency_key"], kw.get("stage")) for name, kw in contract_modules] == [
        ("record_refund", "stripe:refund:re_1", None),
        ("record_dispute", "stripe:evt_2", "opened"),
        ("record_dispute", "stripe:evt_3", "lost"),
    ]


def test_the_default_invoice_source_reads_and_records_sync(contract_modules: Any) -> None:
    source = stripe_ports.invoices()
    assert source.get("in_1") == {"id": "in_1", "status": "finalized"}
    source.set_sync("in_1", {"status": "synced"})
    assert FakeInvoicesRepository.docs["in_1"]["stripe"] == {"status": "synced"}
