"""Percentage charges through the real admin and read handlers: accepted on a sum meter, refused with a
clear code on any other, and shown back as published."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Api = Callable[..., tuple[int, Any]]

PLAN = {
    "code": "payments",
    "name": "Payments",
    "currency": "USD",
    "interval": "month",
    "charges": [
        {"meter_code": "volume", "model": "percentage", "rate": "2.9", "fixed_fee": "0.30", "free_events": 3},
        {
            "meter_code": "payouts",
            "model": "graduated_percentage",
            "tiers": [{"up_to": "1000", "rate": "1", "flat_fee": "2"}, {"up_to": None, "rate": "0.5"}],
        },
    ],
}


def _seed(admin: Api) -> None:
    for code in ("volume", "payouts"):
        body = {"code": code, "name": code, "aggregation": "sum", "field": "amount"}
        assert admin("POST", "/v1/meters", body)[0] == 201
    assert admin("POST", "/v1/meters", {"code": "calls", "name": "Calls", "aggregation": "count"})[0] == 201


def test_percentage_plan_is_published_and_read_back(admin: Api, reader: Api) -> None:
    _seed(admin)
    # WHEN a plan with both percentage models is created
    status, body = admin("POST", "/v1/plans", PLAN)
    # THEN it is stored and read back as published
    assert status == 201, body
    read = reader("/v1/plans/payments", params={"plan_code": "payments"})[1]
    volume, payouts = read["charges"]
    assert (volume["rate"], volume["fixed_fee"], volume["free_events"]) == (
        "2.9",
        "0.3",
        3,
    )  # canonical text of "0.30"
    assert [t["rate"] for t in payouts["tiers"]] == ["1", "0.5"]
    assert payouts["tiers"][0]["unit_price"] is None


def test_percentage_on_a_meter_that_does_not_sum_is_refused(admin: Api, reader: Api) -> None:
    _seed(admin)
    bad = PLAN | {"charges": [{"meter_code": "calls", "model": "percentage", "rate": "1"}]}
    status, body = admin("POST", "/v1/plans", bad)
    error = body["error"]
    assert (status, error["code"], error["param"]) == (400, "charge_needs_sum_meter", "charges.0.model")
    # AND nothing was written
    assert reader("/v1/plans/payments", params={"plan_code": "payments"})[0] == 404


def test_percentage_charge_missing_its_rate_is_a_validation_error(admin: Api) -> None:
    _seed(admin)
    bad = PLAN | {"charges": [{"meter_code": "volume", "model": "percentage", "fixed_fee": "0.3"}]}
    status, body = admin("POST", "/v1/plans", bad)
    assert (status, body["error"]["code"]) == (422, "validation_error")
    assert "a percentage charge takes exactly ['rate']" in body["error"]["details"][0]["message"]


def test_charge_filters_on_grouped_meter_are_published_and_ungrouped_ones_refused(
    admin: Api, reader: Api
) -> None:
    # GIVEN a sum meter grouped by type
    meter = {"code": "cards", "name": "Cards", "aggregation": "sum", "field": "amount", "group_by": ["type"]}
    assert admin("POST", "/v1/meters", meter)[0] == 201
    charge = {
        "meter_code": "cards",
        "model": "percentage",
        "rate": "2.9",
        "fixed_fee": "0.30",
        "filters": [{"values": {"type": ["in_person"]}, "rate": "2.7", "fixed_fee": "0.05"}],
    }
    plan = {"code": "cards", "name": "Cards", "currency": "USD", "interval": "month", "charges": [charge]}
    # WHEN the plan is created THEN its filter is read back
    assert admin("POST", "/v1/plans", plan)[0] == 201
    (stored,) = reader("/v1/plans/cards", params={"plan_code": "cards"})[1]["charges"]
    assert stored["filters"][0]["values"] == {"type": ["in_person"]}
    assert (stored["filters"][0]["rate"], stored["filters"][0]["fixed_fee"]) == ("2.7", "0.05")
    # AND a filter on a property the meter does not group by is refused, naming the filter
    other = charge | {"filters": [{"values": {"country": ["fr"]}, "rate": "1"}]}
    status, body = admin(
        "POST",
        "/v1/plans/cards/versions",
        {k: v for k, v in plan.items() if k != "code"} | {"charges": [other]},
        params={"plan_code": "cards"},
    )
    error = body["error"]
    assert (status, error["code"], error["param"]) == (
        400,
        "filter_not_grouped",
        "charges.0.filters.0.values",
    )
    assert reader("/v1/plans/cards", params={"plan_code": "cards"})[1]["versions"] == [1]


def test_dynamic_charge_is_published_on_a_sum_meter_only(admin: Api, reader: Api) -> None:
    _seed(admin)
    plan = {
        "code": "ai",
        "name": "AI",
        "currency": "USD",
        "interval": "month",
        "charges": [{"meter_code": "volume", "model": "dynamic", "multiplier": "0.01"}],
    }
    assert admin("POST", "/v1/plans", plan)[0] == 201
    (charge,) = reader("/v1/plans/ai", params={"plan_code": "ai"})[1]["charges"]
    assert (charge["model"], charge["multiplier"]) == ("dynamic", "0.01")
    bad = plan | {"code": "ai2", "charges": [{"meter_code": "calls", "model": "dynamic"}]}
    status, body = admin("POST", "/v1/plans", bad)
    assert (status, body["error"]["code"]) == (400, "charge_needs_sum_meter")


def test_filter_fields_are_read_back_and_those_that_cannot_apply_refused(admin: Api, reader: Api) -> None:
    # GIVEN a sum meter grouped by provider
    meter = {"code": "cost", "name": "Cost", "aggregation": "sum", "field": "cost", "group_by": ["provider"]}
    assert admin("POST", "/v1/meters", meter)[0] == 201
    bounded = {"values": {"provider": ["x"]}, "rate": "2", "per_event_min": "1.5", "per_event_max": "3"}
    charge = {"meter_code": "cost", "model": "percentage", "rate": "1", "filters": [bounded]}
    plan = {"code": "costs", "name": "Costs", "currency": "USD", "interval": "month", "charges": [charge]}
    # WHEN a plan whose filter sets per-event bounds is created THEN they are read back
    assert admin("POST", "/v1/plans", plan)[0] == 201
    (stored,) = reader("/v1/plans/costs", params={"plan_code": "costs"})[1]["charges"]
    assert (stored["filters"][0]["per_event_min"], stored["filters"][0]["per_event_max"]) == ("1.5", "3")
    # AND a filter field the charge's model does not take, or a charge-only field, is refused
    for extra in ({"multiplier": "2"}, {"pay_in_advance": True}, {"model": "dynamic"}, {"free_units": "1"}):
        other = charge | {"filters": [bounded | extra]}
        status, body = admin("POST", "/v1/plans", plan | {"code": "refused", "charges": [other]})
        assert status == 422, (extra, body)
        assert body["error"]["code"] == "validation_error" and "filters" in str(body["error"]), body
