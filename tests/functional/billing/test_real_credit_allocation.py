"""Credit allocation across lines with the REAL pricing engine, ledger and worker on moto: a grant
restricted to the meter and an unrestricted purchased grant, on an invoice with a fixed fee.

The plan: a 15.00 fixed fee in arrears and api_calls at 1.00 per call, on daily windows (so each day's
invoice has the whole fee). Day 0 has 20 calls. By hand: usage 20 x 1.00 = 2000, fee 1500, subtotal 3500.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from neruba.logic.ledger.credits import create_grant
from tests.functional.billing.conftest import START, World, assert_books_agree, ledger
from tests.functional.billing.helpers import day, schedule, work

FAR = datetime(2099, 1, 1, tzinfo=UTC)  # the ledger compares expiry with the real clock too


@pytest.fixture
def fee_world(real: World) -> World:
    from neruba.logic.catalog.entries import create_plan
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.models.catalog import PlanCreate, SubscriptionCreate

    create_plan(
        real.plans,
        PlanCreate.model_validate(
            {
                "code": "feeplan",
                "name": "Fee and calls",
                "currency": "USD",
                "interval": "month",
                "fixed_fee": {"amount": "15.00", "timing": "arrears"},
                "charges": [{"meter_code": "api_calls", "model": "per_unit", "unit_price": "1.00"}],
            }
        ),
    )
    body = SubscriptionCreate(customer_id="acme", plan_code="feeplan", start_at=START)
    real.subscriptions.append(create_subscription(real.plans, body, "sub-acme-fee", now=START))
    real.usage("acme", START + day(0, 4), 20)
    return real


def _grant(key: str, kind: str, amount: int, priority: int, meters: list[str] | None) -> Any:
    grant, _ = create_grant(
        ledger(),
        customer_id="acme",
        kind=kind,  # type: ignore[arg-type]
        amount_minor=amount,
        currency="USD",
        idempotency_key=key,
        actor="test",
        priority=priority,
        at=START - day(1),
        expires_at=FAR,
        meter_codes=meters,
    )
    return grant


def _day0_invoice(world: World, monkeypatch: Any) -> dict[str, Any]:
    schedule(world, START + day(1, 1))
    work(world, START + day(1, 1), monkeypatch)
    (usage,) = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    return usage


def _credits_by_grant(invoice: dict[str, Any]) -> dict[tuple[str, str], int]:
    return {(a["grant_id"], a["line_id"]): int(a["amount_minor"]) for a in invoice["applications"]}


def test_an_earlier_purchased_grant_leaves_the_metered_line_to_the_restricted_grant(
    fee_world: World, monkeypatch: Any
) -> None:
    # GIVEN a purchased grant first in the order of use (priority 0, 3000, any line) and a promotional
    # grant restricted to api_calls (priority 1, 1500)
    purchased = _grant("prepaid", "purchased", 3000, 0, None)
    promo = _grant("calls-promo", "promotional", 1500, 1, ["api_calls"])

    # WHEN day 0 (usage 2000, fee 1500) is billed
    invoice = _day0_invoice(fee_world, monkeypatch)

    # THEN the purchased grant pays the fee (only it may) and 1500 of usage, the restricted grant the
    # other 500 of usage: 3500 applied, nothing due (before: the purchased grant paid usage 2000 and fee
    # 1000, the restricted one nothing, 500 due and 1500 of credit left to expire)
    assert (invoice["subtotal_minor"], invoice["credits_applied_minor"], invoice["total_minor"]) == (
        3500,
        3500,
        0,
    )
    usage_line = next(line["line_id"] for line in invoice["lines"] if line["kind"] == "usage")
    fee_line = next(line["line_id"] for line in invoice["lines"] if line["kind"] == "fixed_fee")
    assert _credits_by_grant(invoice) == {
        (purchased.grant_id, usage_line): 1500,
        (purchased.grant_id, fee_line): 1500,
        (promo.grant_id, usage_line): 500,
    }
    assert ledger().grant(purchased.grant_id).remaining_minor == 0
    assert ledger().grant(promo.grant_id).remaining_minor == 1000
    assert_books_agree(fee_world, "acme")


def test_a_restricted_grant_first_in_order_pays_the_metered_line(fee_world: World, monkeypatch: Any) -> None:
    # GIVEN a grant of 1500 restricted to api_calls first in the order of use (priority 0) and a
    # purchased grant of 3000 after it (priority 1)
    promo = _grant("calls-promo", "promotional", 1500, 0, ["api_calls"])
    purchased = _grant("prepaid", "purchased", 3000, 1, None)

    # WHEN day 0 (usage 2000, fee 1500) is billed
    invoice = _day0_invoice(fee_world, monkeypatch)

    # THEN the restricted grant is spent in full on usage; the purchased one pays the fee and the other
    # 500 of usage and keeps 3000 - 2000 = 1000
    usage_line = next(line["line_id"] for line in invoice["lines"] if line["kind"] == "usage")
    fee_line = next(line["line_id"] for line in invoice["lines"] if line["kind"] == "fixed_fee")
    assert _credits_by_grant(invoice) == {
        (promo.grant_id, usage_line): 1500,
        (purchased.grant_id, fee_line): 1500,
        (purchased.grant_id, usage_line): 500,
    }
    assert (invoice["credits_applied_minor"], invoice["total_minor"]) == (3500, 0)
    assert ledger().grant(promo.grant_id).remaining_minor == 0
    assert ledger().grant(purchased.grant_id).remaining_minor == 1000
    assert_books_agree(fee_world, "acme")
