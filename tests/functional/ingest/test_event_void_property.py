"""Property: after any sequence of ingests, voids and amends (of events and of corrected copies), every
meter's usage and the rated invoice total of the customer equal those of a second customer that only
ever received the surviving events. Every aggregation is covered: count, a grouped sum, max, min,
unique_count, latest, average and weighted_sum."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.functional.ingest.test_event_voids import NOW

METERS = {
    "api_calls": lambda v: {},
    "tokens": lambda v: {"tokens": v, "model": "large" if v % 2 else "small"},
    "storage_gb": lambda v: {"gb": v},
    "seats": lambda v: {"user": f"u{v % 3}"},
    "plan_level": lambda v: {"level": v},
    "floor_gb": lambda v: {"gb": v},
    "mean_ms": lambda v: {"ms": v},
    "level_ws": lambda v: {"d": v - 4},
}
EVENTS = st.lists(st.tuples(st.sampled_from(sorted(METERS)), st.integers(1, 9)), min_size=1, max_size=6)
ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("void"), st.integers(0, 20)),
        st.tuples(st.just("amend"), st.integers(0, 20), st.integers(1, 9), st.integers(0, 50)),
    ),
    max_size=6,
)


@pytest.fixture
def metered(catalog: Any) -> Any:
    """Every aggregation's meter and a plan charging each of them per unit."""
    from neruba.logic.catalog.entries import create_plan
    from neruba.models.catalog import Meter, PlanCreate

    catalog.create_meter(Meter(code="floor_gb", name="Low storage", aggregation="min", field="gb"))
    catalog.create_meter(Meter(code="mean_ms", name="Mean latency", aggregation="average", field="ms"))
    catalog.create_meter(
        Meter(code="level_ws", name="Level", aggregation="weighted_sum", field="d", allow_negative=True)
    )
    charges = [{"meter_code": m, "model": "per_unit", "unit_price": "1.37"} for m in sorted(METERS)]
    plan = {"code": "all", "name": "All", "currency": "USD", "interval": "month", "charges": charges}
    from neruba import bootstrap

    create_plan(bootstrap.plans(), PlanCreate.model_validate(plan))
    return bootstrap.plans()


def _customer(catalog: Any) -> tuple[str, str]:
    """A fresh customer subscribed to the plan since three days ago; (customer, subscription id)."""
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.models.catalog import Customer, SubscriptionCreate

    customer = "p" + uuid.uuid4().hex[:12]
    catalog.create_customer(Customer(external_id=customer, name="P", currency="USD"))
    body = SubscriptionCreate(customer_id=customer, plan_code="all", start_at=NOW - timedelta(days=3))
    sub = create_subscription(catalog, body, f"sub-{customer}", now=NOW - timedelta(days=3))
    return customer, str(sub["id"])


def _state(customer: str, subscription_id: str) -> tuple[dict[str, Any], int]:
    from neruba import bootstrap
    from neruba.domain.usage import combine

    usage = bootstrap.usage()
    first = (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H")
    last = (NOW + timedelta(days=1)).strftime("%Y-%m-%dT%H")
    cells: dict[str, Any] = {}
    for meter in sorted(METERS):
        aggregation = bootstrap.plans().get_meter(meter).aggregation
        for cell in usage.aggregates(customer, meter, first, last):
            if cell.usage.count:
                quantity = combine(aggregation, [cell.usage])
                cells[f"{meter}/{cell.hour}#{cell.group}"] = (cell.usage.count, quantity, cell.usage.weighted)
    ctx = bootstrap.billing()
    terms = ctx.subscription(subscription_id).timeline
    rated = ctx.rate_window(terms, NOW - timedelta(hours=6), NOW + timedelta(hours=6))
    return cells, rated.subtotal_minor


@settings(
    max_examples=6,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(events=EVENTS, actions=ACTIONS)
def test_usage_and_invoice_totals_equal_a_recount_of_the_surviving_events(
    metered: Any, send: Any, process: Any, events: list[tuple[str, int]], actions: list[tuple[Any, ...]]
) -> None:
    from neruba.errors import InvalidRequestError
    from neruba.logic.ingest.voids import VoidRequest, void_event

    customer, subscription = _customer(metered)
    twin, twin_subscription = _customer(metered)
    seconds = iter(range(3600))  # every timestamp distinct: "latest" never depends on a tie
    live: dict[str, dict[str, Any]] = {}
    for n, (meter, value) in enumerate(events):
        at = NOW + timedelta(seconds=next(seconds) * 7 % 3600)
        live[f"e{n}"] = {"code": meter, "timestamp": at.isoformat(), "properties": METERS[meter](value)}
    send(*({"transaction_id": tx, "customer_id": customer, **e} for tx, e in live.items()))
    process()
    for n, action in enumerate(actions):
        tx = sorted(live)[action[1] % len(live)] if live else None
        if tx is None:
            break
        event = live[tx]
        if action[0] == "void":
            request = VoidRequest(customer, tx, "property", "P-1")
        else:
            _, _, value, minute = action
            at = NOW + timedelta(minutes=minute, seconds=next(seconds) % 60)
            request = VoidRequest(
                customer,
                tx,
                "property",
                "P-1",
                properties=METERS[event["code"]](value),
                timestamp=at,
                amend=True,
            )
        refused = None
        try:
            answer = void_event(request, "key:test", f"{customer}-{n}")
        except InvalidRequestError as exc:
            refused = exc.code
        if refused is not None:
            assert refused == "amend_changes_nothing"  # the one refusal an action here may meet
            continue
        assert answer["correction"] == "completed"
        del live[tx]
        copy = answer.get("amended_by")
        if copy:
            live[copy["transaction_id"]] = {
                "code": copy["code"],
                "timestamp": copy["timestamp"],
                "properties": copy["properties"],
            }
    if live:
        send(*({"transaction_id": tx, "customer_id": twin, **e} for tx, e in live.items()))
        process()
    cells, total = _state(customer, subscription)
    twin_cells, twin_total = _state(twin, twin_subscription)
    assert cells == twin_cells
    assert total == twin_total
    assert Decimal(total) >= 0 or any(k.startswith("level_ws") for k in cells)
