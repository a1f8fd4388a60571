"""credit_grant.created/expired/voided/depleted and balance.low are written in the transaction that
changes the grant: a crash at the commit writes neither the change nor the event, and repeating the
operation (a retried grant, a second expiry run, a rerun of billing) writes no second event."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from neruba.logic.ledger.credits import close_remainder, create_grant, expire_due
from tests.functional.billing.conftest import START, World, ledger, real, subscribe_real  # noqa: F401
from tests.functional.billing.helpers import day, schedule, work, worker
from tests.functional.webhooks.sources import Crash, crash_with_outbox, outbox
from tests.support.queues import receive_batch, run_batch


def _grant(key: str, kind: str, amount: int, priority: int, **extra: Any) -> Any:
    grant, _ = create_grant(
        ledger(), customer_id="acme", kind=kind, amount_minor=amount, currency="USD",  # type: ignore[arg-type]
        idempotency_key=key, actor="test", priority=priority, at=START - day(1), **extra,
    )  # fmt: skip
    return grant


def test_grant_events_land_with_the_grant_change(real: World, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from neruba.logic.catalog.entries import update_customer
    from neruba.models.catalog import CustomerUpdate

    update_customer(real.plans, "acme", CustomerUpdate(balance_low_threshold_minor=1000))
    # created: a crash writes no grant and no event; a retried grant (same key) no second event
    with crash_with_outbox(monkeypatch) as crashes, pytest.raises(Crash):
        _grant("welcome", "promotional", 500, 0)
    assert crashes == [1] and ledger().grants("acme", "USD", START) == []
    welcome = _grant("welcome", "promotional", 500, 0)
    assert _grant("welcome", "promotional", 500, 0).grant_id == welcome.grant_id
    prepaid = _grant("prepaid", "purchased", 1000, 1)
    created = outbox("credit_grant.created")
    assert [(e["data"]["id"], e["data"]["amount_minor"]) for e in created] == [
        (welcome.grant_id, 500),
        (prepaid.grant_id, 1000),
    ]

    # depleted and balance.low: 12.00 of usage takes the 5.00 grant to 0 and the credit from 15.00 to 3.00
    subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 12)
    now = START + day(1, 1)
    schedule(real, now)
    with crash_with_outbox(monkeypatch) as crashes:
        assert run_batch(
            worker(real, now, monkeypatch), real.billing_queue, receive_batch(real.billing_queue, 10)
        )
    assert crashes[0] >= 1 and ledger().grant(welcome.grant_id).remaining_minor == 500
    assert outbox("credit_grant.depleted") == [] and outbox("balance.low") == []
    work(real, now, monkeypatch)
    assert ledger().grant(welcome.grant_id).remaining_minor == 0
    (depleted,) = outbox("credit_grant.depleted")
    assert (depleted["data"]["id"], depleted["data"]["remaining_minor"]) == (welcome.grant_id, 0)
    (low,) = outbox("balance.low")
    assert low["data"] | {} == {
        "customer_id": "acme", "currency": "USD", "available_minor": 300,
        "previous_available_minor": 1500, "threshold_minor": 1000,
    }  # fmt: skip
    # a rerun of the same window bills nothing again and writes no second event
    schedule(real, now, trigger="manual")
    work(real, now, monkeypatch)
    assert len(outbox("credit_grant.depleted")) == 1 and len(outbox("balance.low")) == 1

    # voided (operator) and expired (the expiry job), each once
    close_remainder(ledger(), ledger().grant(prepaid.grant_id), "voided", idempotency_key="void:1",  # type: ignore[arg-type]
                    actor="test", source="operator")  # fmt: skip
    (voided,) = outbox("credit_grant.voided")
    assert (voided["data"]["closed_minor"], voided["data"]["remaining_minor"]) == (300, 0)
    soon = _grant("soon", "promotional", 700, 2, expires_at=START + timedelta(days=400))
    later = START + timedelta(days=401)
    with crash_with_outbox(monkeypatch), pytest.raises(Crash):
        expire_due(ledger(), later)
    assert ledger().grant(soon.grant_id).status == "active"  # type: ignore[union-attr]
    assert expire_due(ledger(), later)["expired"] == [soon.grant_id]
    assert expire_due(ledger(), later)["expired"] == []
    (expired,) = outbox("credit_grant.expired")
    assert (expired["data"]["id"], expired["data"]["closed_minor"]) == (soon.grant_id, 700)
