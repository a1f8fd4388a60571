"""Every price field a charge filter may set applies to the groups the filter prices: a table over each
model and each of its fields, and the two cases where a filter's field was once ignored (a dynamic
multiplier, percentage per-event bounds). Rules in docs/pricing.md ("Fields a filter may set")."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from neruba.domain.event_rules import digest, rule_of
from neruba.domain.ingest import GroupTotals
from neruba.domain.lines import GroupUsage, usage_lines
from neruba.domain.pricing import PRICE_FIELDS, filter_price, price_for_group
from neruba.domain.usage import rule_usage, usage_of
from neruba.models.catalog import ChargeIn, Pricing

T0, T1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
TIERS = [{"up_to": "5", "unit_price": "1"}, {"up_to": None, "unit_price": "2"}]
RATE_TIERS = [{"up_to": "5", "rate": "1"}, {"up_to": None, "rate": "2"}]

# model -> the charge's own price fields, and field -> (the charge's value, the filter's value)
BASE: dict[str, dict[str, Any]] = {
    "per_unit": {"unit_price": "1"},
    "graduated": {"tiers": TIERS},
    "volume": {"tiers": TIERS},
    "package": {"package_size": 2, "package_price": "3"},
    "percentage": {"rate": "1"},
    "graduated_percentage": {"tiers": RATE_TIERS},
    "dynamic": {},
}
OTHER: dict[str, Any] = {
    "unit_price": "7",
    "tiers": [{"up_to": "9", "unit_price": "4"}, {"up_to": None, "unit_price": "3"}],
    "package_size": 5,
    "package_price": "8",
    "free_units": "4",
    "rate": "3",
    "fixed_fee": "0.5",
    "free_events": 2,
    "per_event_min": "0.2",
    "per_event_max": "9",
    "multiplier": "1.5",
    "zero_usage_flat_fee": True,
}
OPTIONAL = {
    "percentage": ["fixed_fee", "free_events", "per_event_min", "per_event_max"],
    "dynamic": ["multiplier"],
    "graduated": ["zero_usage_flat_fee"],
    "volume": ["zero_usage_flat_fee"],
    "graduated_percentage": ["zero_usage_flat_fee"],
}


def _cases() -> list[tuple[str, str]]:
    cases = []
    for model, base in BASE.items():
        for name in [*base, "free_units", *OPTIONAL.get(model, [])]:
            if model == "percentage" and name == "free_units":
                continue  # checked below with its own charge (bounds take no free units)
            cases.append((model, name))
    return cases


def _filter_value(model: str, name: str) -> Any:
    if name == "tiers" and model == "graduated_percentage":
        return [{"up_to": "9", "rate": "4"}, {"up_to": None, "rate": "3"}]
    return OTHER[name]


@pytest.mark.parametrize(("model", "name"), _cases())
def test_each_field_a_filter_may_set_replaces_the_charges(model: str, name: str) -> None:
    # GIVEN a charge and a filter for region eu that differs from it in one field only
    own = dict(BASE[model])
    price = {**own, name: _filter_value(model, name)}
    body = {"meter_code": "m", "model": model, **own,
            "filters": [{"values": {"region": ["eu"]}, **price}]}  # fmt: skip
    # (the API accepts it: the field applies to the model)
    charge = ChargeIn.model_validate(body).model_dump(mode="json")
    # WHEN the eu group's price is chosen
    chosen, index = price_for_group(charge, {"region": "eu"})
    # THEN it is the filter's, field for field, and the other groups keep the charge's
    assert index == 0
    expected = ChargeIn.model_validate({"meter_code": "m", "model": model, **price}).model_dump(mode="json")
    assert chosen[name] == expected[name] != charge[name]
    assert price_for_group(charge, {"region": "us"})[0][name] == charge[name]


def test_every_field_of_a_price_is_one_a_filter_replaces() -> None:
    # THEN no field of a charge's price is left out of what a filter replaces
    assert set(PRICE_FIELDS) == set(Pricing.model_fields)


def _line_amounts(charge_body: dict[str, Any], events: dict[str, list[str]]) -> dict[str, Any]:
    """Lines per group of ``events`` (group value of ``t`` -> event values), ingested under the rules
    the charge and its filters register (as publishing does) and rated."""
    charge = ChargeIn.model_validate(charge_body).model_dump(mode="json")
    prices = [charge] + [filter_price(charge, index) for index in range(len(charge["filters"]))]
    rules = {digest(rule): rule for rule in map(rule_of, prices) if rule is not None}
    usage = {}
    for group, values in events.items():
        totals = GroupTotals()
        for n, value in enumerate(values):
            totals.add(f"{group}{n}", "sum", "2026-01-02T00:00:00", Decimal(value), rules)
        cell = usage_of("sum", totals)
        sums, counts = rule_usage([cell])
        usage[f"t={group}"] = GroupUsage(cell.total or Decimal(0), 1, cell.count, sums, counts)
    plan = {"code": "p", "version": 1, "currency": "USD", "charges": [charge]}
    return {line.group["t"]: line for line in usage_lines(plan, T0, T1, {charge["meter_code"]: usage})}


def test_a_dynamic_filters_multiplier_prices_its_groups() -> None:
    # GIVEN dynamic at x1.2, a filter for openai at x1.5 with 1 free unit and one for free at x0
    body = {"meter_code": "cost", "model": "dynamic", "multiplier": "1.2", "filters": [
        {"values": {"t": ["openai"]}, "multiplier": "1.5", "free_units": "1"},
        {"values": {"t": ["free"]}, "multiplier": "0"}]}  # fmt: skip
    # WHEN 3.333 of openai, 3.333 of anthropic and 100 of free are rated
    lines = _line_amounts(body, {"openai": ["3.333"], "anthropic": ["3.333"], "free": ["100"]})
    # THEN each filter's multiplier applies; the default group keeps the charge's
    assert {t: line.amount_minor for t, line in lines.items()} == {"openai": 350, "anthropic": 400, "free": 0}
    assert lines["openai"].source["multiplier"] == Decimal("1.5")


def test_a_percentage_filters_per_event_bounds_price_its_events() -> None:
    # GIVEN percentage at 1%, a filter for x at 2% + 1 per event, each event within 1.5..3
    body = {"meter_code": "a", "model": "percentage", "rate": "1", "filters": [
        {"values": {"t": ["x"]}, "rate": "2", "fixed_fee": "1", "per_event_min": "1.5",
         "per_event_max": "3"}]}  # fmt: skip
    # WHEN x events of 1, 100 and 1000 and a y event of 1000 are ingested and rated
    lines = _line_amounts(body, {"x": ["1", "100", "1000"], "y": ["1000"]})
    # THEN x: 1.02 raised to 1.5, 3 and 21 capped to 3 = 7.50; y: 1% of 1000 = 10.00
    assert lines["x"].amount_minor == 750
    assert lines["x"].source["per_event_charges"] == Decimal("7.5")
    assert lines["y"].amount_minor == 1000


def test_a_percentage_filters_free_units_apply() -> None:
    body = {"meter_code": "a", "model": "percentage", "rate": "1", "fixed_fee": "1", "filters": [
        {"values": {"t": ["x"]}, "rate": "2", "free_units": "50", "free_events": 1}]}  # fmt: skip
    lines = _line_amounts(body, {"x": ["100", "50"], "y": ["100"]})
    # x: 2% of (150 - 50) = 2, no fixed fee on the filter; y: 1% of 100 + 1 = 2
    assert lines["x"].amount_minor == 200
    assert lines["y"].amount_minor == 200


@pytest.mark.parametrize(
    "extra",
    [
        {"multiplier": "2"},  # not a field of per_unit
        {"per_event_min": "1"},
        {"pay_in_advance": True},  # a charge's field, not a price's
        {"pricing_unit": {"code": "credits", "conversion_rate": "0.01"}},
        {"model": "volume"},  # the model is the charge's
        {"meter_code": "other"},
    ],
)
def test_a_filter_field_that_cannot_apply_is_refused(extra: dict[str, Any]) -> None:
    body = {"meter_code": "m", "model": "per_unit", "unit_price": "1",
            "filters": [{"values": {"t": ["x"]}, "unit_price": "2", **extra}]}  # fmt: skip
    with pytest.raises(ValidationError):
        ChargeIn.model_validate(body)


def test_a_filter_without_bounds_does_not_take_the_charges() -> None:
    # GIVEN percentage at 1% capped at 2 per event, and a filter for x at 2% with no bounds
    body = {"meter_code": "a", "model": "percentage", "rate": "1", "per_event_max": "2",
            "filters": [{"values": {"t": ["x"]}, "rate": "2"}]}  # fmt: skip
    # WHEN an x event and a y event of 1000 are rated
    lines = _line_amounts(body, {"x": ["1000"], "y": ["1000"]})
    # THEN x is 2% of 1000 uncapped (not flagged as priced by a rule never registered); y is capped at 2
    assert (lines["x"].amount_minor, lines["y"].amount_minor) == (2000, 200)
    assert "unbillable" not in lines["x"].source
