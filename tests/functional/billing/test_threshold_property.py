"""Property: for random usage sequences (late hours included), thresholds and prepaid credit, the
threshold invoices of a period plus its period-end invoice bill exactly the period's rating without
thresholds, to the minor unit, and the ledger stays balanced (receivable = what the invoices ask for)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from neruba.logic.billing.threshold_invoices import evaluate_customer
from neruba.logic.billing.worker import ensure_billing_state
from neruba.logic.ledger.credits import create_grant
from neruba.models.catalog import Customer
from tests.functional.billing.conftest import START, World, ledger, make_world
from tests.functional.billing.helpers import schedule, work

TIERED = {
    "code": "tiered",
    "name": "Tiered",
    "currency": "USD",
    "interval": "month",
    "fixed_fee": {"amount": "3.33", "timing": "arrears"},
    "charges": [
        {
            "meter_code": "api_calls",
            "model": "graduated",
            "tiers": [
                {"up_to": 40, "unit_price": "0.137"},
                {"up_to": 150, "unit_price": "0.0913"},
                {"up_to": None, "unit_price": "0.0555", "flat_fee": "0.07"},
            ],
        }
    ],
}
EXAMPLES = iter(range(10**6))  # each example bills its own later day: the scheduler's clock never goes back
USAGE = st.lists(st.tuples(st.integers(0, 23), st.integers(0, 60)), min_size=1, max_size=8)


@pytest.fixture
def tiered(aws: dict[str, str]) -> World:
    return make_world(TIERED, {})


@settings(
    max_examples=6,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@example(usage=[(1, 60), (5, 30), (2, 20)], threshold=400, credit=250, opening_first=False)
@given(
    usage=USAGE,
    threshold=st.integers(1, 900),
    credit=st.sampled_from([0, 0, 250, 5000]),
    opening_first=st.booleans(),
)
def test_threshold_invoices_and_the_period_end_bill_the_period_exactly(
    tiered: World,
    monkeypatch: Any,
    usage: list[tuple[int, int]],
    threshold: int,
    credit: int,
    opening_first: bool,
) -> None:
    # GIVEN a fresh customer with this threshold (and maybe prepaid credit), its opening billed before
    # the usage arrives or not (then crossings come before the opening invoice exists)
    customer = "c" + uuid.uuid4().hex[:10]
    start = START + timedelta(days=2 * next(EXAMPLES))
    tiered.plans.create_customer(
        Customer(external_id=customer, name="C", currency="USD", invoice_threshold_minor=threshold)
    )
    if credit:
        create_grant(
            ledger(), customer_id=customer, kind="purchased", amount_minor=credit, currency="USD",
            idempotency_key=f"g-{customer}", actor="test", at=START - timedelta(days=1), expires_at=None,
        )  # fmt: skip
    sub = tiered.subscribe(customer, start, phases=[
        {"plan_code": "tiered", "plan_version": 1, "start_at": start.isoformat(), "end_at": None}
    ])  # fmt: skip
    ensure_billing_state(tiered.ctx.billing, sub)  # (the catalog's create_subscription writes it)
    if opening_first:
        schedule(tiered, start)
        work(tiered, start, monkeypatch)

    # WHEN usage arrives hour by hour (in any order: late hours too) and each batch is checked
    hours: dict[int, int] = defaultdict(int)
    clock = start
    for hour, calls in usage:
        hours[hour] += calls
        tiered.usage(customer, start + timedelta(hours=hour), hours[hour])
        clock = max(clock, start + timedelta(hours=hour, minutes=30))
        evaluate_customer(tiered.ctx, customer, clock)
    end = start + timedelta(days=1, hours=1)
    schedule(tiered, end)
    work(tiered, end, monkeypatch)

    # THEN the period's invoices bill exactly its rating without thresholds (the opening billed once)
    assert len([i for i in tiered.invoices(customer) if i["kind"] == "opening"]) == 1
    invoices = [i for i in tiered.invoices(customer) if i["kind"] != "opening"]
    early = [i for i in invoices if i["kind"] == "threshold"]
    [closing] = [i for i in invoices if i["kind"] == "usage"]
    whole = tiered.ctx.rate_window(sub, start, start + timedelta(days=1)).subtotal_minor
    assert sum(int(i["subtotal_minor"]) for i in invoices) == whole
    assert all(i["status"] == "finalized" and i["number"] for i in early)
    assert all(int(i["subtotal_minor"]) >= threshold for i in early)
    # credit pays at most the grant, and never more than an invoice's subtotal
    assert sum(int(i["credits_applied_minor"]) for i in invoices) <= credit
    assert all(0 <= int(i["credits_applied_minor"]) <= max(0, int(i["subtotal_minor"])) for i in invoices)
    assert closing["subtotal_minor"] == whole - sum(int(i["subtotal_minor"]) for i in early)
    # the ledger is balanced and its receivable is what the invoices ask for
    repo = ledger()
    assert repo.reconcile(customer) == []
    due = sum(int(i["total_minor"]) for i in tiered.invoices(customer))
    assert repo.balances(customer).get("USD", {}).get("receivable", 0) == due
