"""Sync-out of an invoice with a discount and exclusive tax: the discount line is a negative invoice item,
the exclusive tax one item of its own, and Stripe's finalized total is ours."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from neruba.dal.invoices import Invoice
from neruba_tools.local.fake_stripe import FakeStripe
from tests.functional.stripe.test_sync import _run_once, _send, _sync
from tests.support.invoices import add_customer, store_invoice

DISCOUNTED = {
    "id": "in_0002",
    "number": "NRB-0002",
    "customer_id": "acme",
    "currency": "USD",
    "status": "finalized",
    "lines": [
        {"line_id": "usage:api_calls:-:0", "kind": "usage", "description": "API calls", "amount_minor": 2000,
         "tax": {"amount_after_discounts_minor": 1500, "net_minor": 1500, "inclusive_minor": 0,
                 "exclusive_minor": 300, "rates": []}},
        {"line_id": "discount:di_1", "kind": "discount", "description": "Discount Launch (25% off)",
         "amount_minor": -500,
         "source": {"allocations": [{"line_id": "usage:api_calls:-:0", "amount_minor": 500}]}},
    ],
    "subtotal_minor": 1500,
    "discounts_minor": 500,
    "tax_minor": 300,
    "tax_included_minor": 0,
    "credits_applied_minor": 0,
    "total_minor": 1800,
}  # fmt: skip


@pytest.fixture
def fake(stripe_secret: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    with FakeStripe() as server:
        monkeypatch.setenv("NERUBA_STRIPE_API_BASE", server.url)
        yield server


@pytest.fixture
def ours(aws: dict[str, str]) -> Invoice:
    add_customer("acme", email="billing@acme.test")
    return store_invoice(DISCOUNTED, post=False)


def test_the_discount_is_a_negative_item_and_the_tax_an_item_of_its_own(
    fake: FakeStripe, ours: Invoice
) -> None:
    _send("in_0002")
    assert _run_once() == set()
    (stripe_invoice,) = fake.invoices.values()
    assert stripe_invoice["total"] == 1800
    assert sorted(i["amount"] for i in fake.items.values()) == [-500, 300, 2000]
    sync = _sync("in_0002")
    assert sync["status"] == "synced" and set(sync["items"]) == {
        "usage:api_calls:-:0",
        "discount:di_1",
        "tax",
    }
