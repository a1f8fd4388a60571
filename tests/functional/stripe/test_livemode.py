"""An event from the other Stripe mode than the configured key's (a live event on a test-mode stack, or a
test event on a live one) is parked with ``livemode_mismatch``; nothing is applied, for every handled type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.invoices import Books
from tests.support.stripe_events import SECRET, charge_refunded, dispute, invoice_paid, payment_failed

HANDLED: list[Callable[[], dict[str, Any]]] = [
    lambda: invoice_paid(amount=5000),
    lambda: {**invoice_paid(amount=5000), "type": "invoice.payment_succeeded"},
    lambda: payment_failed(),
    lambda: charge_refunded(charge="ch_1", refunds=[("re_1", 1000)]),
    lambda: dispute("created", charge="ch_1"),
    lambda: dispute("closed", charge="ch_1", status="lost"),
]


@pytest.mark.parametrize("make", HANDLED)
@pytest.mark.parametrize(("api_key", "livemode"), [("sk_test_neruba", True), ("sk_live_neruba", False)])
def test_an_event_of_the_other_mode_is_parked_and_applies_nothing(
    make: Callable[[], dict[str, Any]],
    api_key: str,
    livemode: bool,
    stripe_secret: Any,
    deliver: Any,
    process: Any,
    ports: Books,
    stored: Any,
) -> None:
    stripe_secret([SECRET], api_key=api_key)
    sent = {**make(), "livemode": livemode}
    assert deliver(sent)[0] == 200
    process()
    record = stored(sent["id"])
    assert record["status"] == "parked", record
    assert record["error"].startswith("livemode_mismatch"), record["error"]
    assert ports.postings == {}
    assert ports.status() == "finalized"


def test_an_event_of_the_keys_mode_is_applied(
    stripe_secret: Any, deliver: Any, process: Any, ports: Books, stored: Any
) -> None:
    stripe_secret([SECRET], api_key="sk_live_neruba")
    sent = {**invoice_paid(amount=5000), "livemode": True}
    deliver(sent)
    process()
    assert stored(sent["id"])["status"] == "processed"
    assert ports.status() == "paid"
