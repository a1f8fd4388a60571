"""A rule that ties fields of a body names the field it concerns (``param``), never the body as a whole."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from neruba.models.catalog import Meter
from neruba.models.ledger import BalanceAdjustment, GrantCreate, RefundCreate
from neruba.validation import describe

METER = {"code": "m", "name": "m", "aggregation": "sum", "field": "x"}


@pytest.mark.parametrize(
    ("model", "body", "param"),
    [
        (RefundCreate, {"amount_minor": 1, "reason": "r"}, "payment_id"),
        (BalanceAdjustment, {"amount_minor": 0, "reason_code": "goodwill", "reason": "r"}, "amount_minor"),
        (
            GrantCreate,
            {
                "kind": "promotional",
                "amount_minor": 1,
                "reason": "r",
                "effective_at": "2026-02-01T00:00:00Z",
                "expires_at": "2026-01-01T00:00:00Z",
            },
            "expires_at",
        ),
        (Meter, {**METER, "aggregation": "count"}, "field"),
        (Meter, {**METER, "field": None}, "field"),
        (Meter, {**METER, "carry_over": True}, "carry_over"),
        (Meter, {**METER, "aggregation": "unique_count", "allow_negative": True}, "allow_negative"),
        (Meter, {**METER, "group_by": ["bad name"]}, "group_by"),
    ],
)
def test_a_rule_across_fields_names_its_field(
    model: type[BaseModel], body: dict[str, Any], param: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        model.model_validate(body)
    (problem,) = describe(refused.value.errors())
    assert problem.param == param
    assert problem.message.startswith(f"'{param}' ") and problem.message.count(param) >= 1
