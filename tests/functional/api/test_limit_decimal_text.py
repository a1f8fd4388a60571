"""Every decimal of a limits body is plain decimal text: a JSON number is refused like ``"1e5"``.

Found over HTTP: an entitlement grant ``{"amount": 2}`` answered 201 though the amount is documented as
plain decimal text (422 otherwise); caps, soft caps, alert levels and feature limits (customer limits and
plan-version defaults) took JSON numbers the same way (docs/limits.md, "Decimals in limits bodies are
text")."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.functional.api.test_entitlement_grants import FEATURES, _audit, _grant
from tests.functional.api.test_limits_api import LIMITS, _get, _put

NUMBERS = [2, 2.5, 0.1, True]


@pytest.mark.parametrize("number", NUMBERS)
def test_a_grant_amount_given_as_a_json_number_is_refused(catalog: Any, number: Any) -> None:
    assert _put(FEATURES)[0] == 200
    status, body = _grant({"amount": number, "reason": "launch week"}, None)
    assert status == 422, body
    assert body["error"]["code"] == "validation_error"
    assert [d["param"] for d in body["error"]["details"]] == ["amount"]
    assert "JSON number" in body["error"]["details"][0]["message"]
    assert _audit() == []


@pytest.mark.parametrize("number", NUMBERS)
@pytest.mark.parametrize(
    ("body", "param"),
    [
        (lambda n: {"meters": [{"meter_code": "api_calls", "hard_cap": n}]}, "meters.0.hard_cap"),
        (lambda n: {"meters": [{"meter_code": "api_calls", "soft_cap": n}]}, "meters.0.soft_cap"),
        (lambda n: {"meters": [{"meter_code": "api_calls", "alerts": ["5", n]}]}, "meters.0.alerts.1"),
        (
            lambda n: {
                "features": [{"feature": "c", "kind": "metered", "meter_code": "api_calls", "limit": n}]
            },
            "features.0.limit",
        ),
    ],
    ids=["hard_cap", "soft_cap", "alerts", "feature limit"],
)
def test_a_limit_given_as_a_json_number_is_refused(catalog: Any, number: Any, body: Any, param: str) -> None:
    status, answer = _put(body(number))
    assert status == 422, answer
    assert answer["error"]["code"] == "validation_error"
    assert [d["param"] for d in answer["error"]["details"]] == [param]
    assert _get(LIMITS, customer_id="acme")[1]["meters"] == []


@pytest.mark.parametrize(
    "defaults",
    [
        {"meters": [{"meter_code": "api_calls", "hard_cap": 5}]},
        {"meters": [{"meter_code": "api_calls", "alerts": [5]}]},
        {"features": [{"feature": "c", "kind": "metered", "meter_code": "api_calls", "limit": 5}]},
    ],
)
def test_plan_version_defaults_refuse_json_numbers_and_take_text(defaults: dict[str, Any]) -> None:
    from neruba.models.limits import PlanDefaultsIn

    with pytest.raises(ValidationError):
        PlanDefaultsIn.model_validate(defaults)
    as_text = {
        key: [{k: (str(v) if isinstance(v, int) else [str(x) for x in v] if isinstance(v, list) else v)
               for k, v in row.items()} for row in rows]
        for key, rows in defaults.items()
    }  # fmt: skip
    assert PlanDefaultsIn.model_validate(as_text)
