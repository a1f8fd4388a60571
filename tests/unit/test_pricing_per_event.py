"""Per-event minimum and maximum of a percentage charge: each event's charge is kept within the bounds,
priced at ingest into an exact per-rule sum of the cell, summed by rating. Published rules reproduced to
the cent, properties of the stored sums, the line when some events were counted before the rule existed.
Rules in docs/pricing.md ("Per-event minimum and maximum")."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from neruba.domain.event_rules import EventRule, digest, event_charge, rule_of
from neruba.domain.ingest import GroupTotals
from neruba.domain.lines import GroupUsage, usage_lines
from neruba.domain.usage import merge_cells, rule_usage, usage_of
from neruba.models.catalog import ChargeIn

UPVEST_FEES = "https://docs.upvest.co/products/tol/guides/fees/fees_transaction_fees_designing"
BALANCED_FEES = (
    "https://rubydoc.info/gems/dune-balanced-bankaccount/1.0.0/Dune/Balanced/Bankaccount/"
    "TransactionFeeCalculatorBase"
)
LAGO_PERCENTAGE = "https://getlago.com/docs/guide/plans/charges/charge-models/percentage"
T0, T1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)


def _ingest(charge: dict[str, Any], values: list[str]) -> GroupUsage:
    """The cell usage ingest stores for ``values`` under the charge's rule, read back as rating does."""
    rule = rule_of(charge)
    assert rule is not None
    totals = GroupTotals()
    for n, value in enumerate(values):
        totals.add(f"t{n}", "sum", "2026-01-02T00:00:00", Decimal(value), {digest(rule): rule})
    cell = usage_of("sum", totals)
    sums, counts = rule_usage([cell])
    return GroupUsage(cell.total or Decimal(0), 1, cell.count, sums, counts)


def _line(charge: dict[str, Any], usage: GroupUsage, currency: str = "USD") -> Any:
    plan = {"code": "p", "version": 1, "currency": currency, "charges": [{"meter_code": "v", **charge}]}
    (line,) = usage_lines(plan, T0, T1, {"v": {"": usage}})
    return line


def test_upvest_one_percent_not_less_than_1_not_more_than_100_eur() -> None:
    """Upvest, designing a transaction fee model (UPVEST_FEES): a flat relative fee of 1% per order, not
    less than 1 EUR and not more than 100 EUR. Orders of 50, 5,000 and 20,000 EUR cost 1 (0.50 raised to
    the minimum), 50 and 100 (200 capped) EUR."""
    charge = {"model": "percentage", "rate": "1", "per_event_min": "1", "per_event_max": "100"}
    line = _line(charge, _ingest(charge, ["50", "5000", "20000"]), "EUR")
    # THEN 151.00 EUR on one line, rounded once
    assert line.amount_minor == 15100
    assert line.source["per_event_charges"] == Decimal("151")
    assert line.quantity == Decimal("25050")
    assert line.description == "v (percentage): each event 1% + 0, at least 1 and at most 100: 3 events = 151"


@pytest.mark.parametrize(("amount", "cents"), [("100", 130), ("470", 500), ("1000", 500), ("10", 40)])
def test_balanced_one_percent_plus_30_cents_capped_at_5(amount: str, cents: int) -> None:
    """Balanced bank-account fees (BALANCED_FEES): 1% + 30 cents, capped at $5 per transaction."""
    charge = {"model": "percentage", "rate": "1", "fixed_fee": "0.30", "per_event_max": "5"}
    assert _line(charge, _ingest(charge, [amount])).amount_minor == cents


def test_lago_rate_and_fee_within_per_transaction_bounds() -> None:
    """Lago, "Percentage" (LAGO_PERCENTAGE): 1.2% plus $0.10 per transaction, with a per-transaction
    minimum and maximum. With bounds of $0.50 and $2: $10 costs 0.22 -> 0.50, $50 costs 0.70, $500
    costs 6.10 -> 2; the three cost $3.20 together, not 1.2% of $560 + 3 x $0.10 = $7.02."""
    charge = {
        "model": "percentage",
        "rate": "1.2",
        "fixed_fee": "0.10",
        "per_event_min": "0.50",
        "per_event_max": "2",
    }
    line = _line(charge, _ingest(charge, ["10", "50", "500"]))
    assert line.amount_minor == 320
    assert (line.source["per_event_min"], line.source["per_event_max"]) == (Decimal("0.50"), Decimal(2))


values = st.lists(
    st.decimals(min_value=0, max_value=10**7, places=3, allow_nan=False, allow_infinity=False), max_size=30
)
bounds = st.decimals(min_value=0, max_value=50, places=2, allow_nan=False, allow_infinity=False)


@settings(max_examples=100, deadline=None)
@given(values, st.integers(1, 5), bounds, bounds)
def test_batches_merge_to_the_exact_sum_of_bounded_charges(
    amounts: list[Decimal], parts: int, low: Decimal, high: Decimal
) -> None:
    low, high = min(low, high), max(low, high)
    rule = EventRule(Decimal("2.9"), Decimal("0.3"), low, high)
    rules = {digest(rule): rule}
    # GIVEN the events split over several batches (contributions of one cell)
    batches = [GroupTotals() for _ in range(parts)]
    for n, value in enumerate(amounts):
        batches[n % parts].add(f"t{n}", "sum", "2026-01-01T00:00:00", value, rules)
    merged = merge_cells(usage_of("sum", b) for b in batches)
    # THEN the merged cell holds exactly the sum of each event's bounded charge, for every event
    expected = sum((min(max(v * Decimal("0.029") + Decimal("0.3"), low), high) for v in amounts), Decimal(0))
    if amounts:
        assert merged.event_sums[digest(rule)] == expected
        assert merged.event_counts[digest(rule)] == len(amounts)
    # AND each charge stays within the bounds
    assert all(low <= event_charge(rule, v) <= high for v in amounts)


def test_events_counted_before_the_rule_existed_are_flagged_not_guessed() -> None:
    charge = {"model": "percentage", "rate": "1", "per_event_min": "1"}
    usage = _ingest(charge, ["50", "60"])
    # GIVEN a third event counted before the rule was registered (in the sum and count, not in the rule's)
    short = GroupUsage(usage.quantity + 70, 1, usage.events + 1, usage.event_sums, usage.event_counts)
    line = _line(charge, short)
    # THEN the line bills 0, says why, and keeps the figures
    assert line.amount_minor == 0
    assert (line.source["unbillable"], line.source["per_event_priced"], line.source["events"]) == (
        "per_event_rule_incomplete",
        2,
        3,
    )
    assert "only 2 of 3 events were priced by the per-event rule" in line.description


def test_equal_rules_share_one_digest_and_different_ones_do_not() -> None:
    a = rule_of({"model": "percentage", "rate": "1.0", "per_event_min": "1.00"})
    b = rule_of({"model": "percentage", "rate": "1", "per_event_min": "1"})
    c = rule_of({"model": "percentage", "rate": "1", "per_event_max": "1"})
    assert a is not None and b is not None and c is not None
    assert digest(a) == digest(b) != digest(c)


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        ({"model": "percentage", "rate": "1", "per_event_min": "2", "per_event_max": "1"}, "cannot be above"),
        ({"model": "percentage", "rate": "1", "per_event_min": "1", "free_units": "5"}, "take no free_units"),
        ({"model": "percentage", "rate": "1", "per_event_max": "1", "free_events": 2}, "take no free_units"),
        ({"model": "per_unit", "unit_price": "1", "per_event_max": "1"}, "takes exactly ['unit_price']"),
        ({"model": "percentage", "rate": "1", "per_event_min": "-1"}, None),
    ],
)
def test_bodies_breaking_a_per_event_rule_are_refused(body: dict[str, Any], rule: str | None) -> None:
    with pytest.raises(ValidationError) as caught:
        ChargeIn.model_validate({"meter_code": "v", **body})
    if rule:
        assert rule in str(caught.value)
