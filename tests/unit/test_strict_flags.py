"""A flag of a request body is a JSON boolean: "yes", "true", 1 or "1" is refused (422), never taken as
true (docs/api.md, errors: ``validation_error``)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from neruba.models.billing import BillingRunRequest
from neruba.models.catalog import Cancellation
from neruba.models.discounts import TaxRateCreate
from neruba.models.ledger import AutoTopUpRuleIn, RefundCreate
from neruba.models.limits import FeatureIn

BODIES: list[tuple[type[BaseModel], dict[str, Any], str]] = [
    (RefundCreate, {"amount_minor": 5, "invoice_id": "in_1", "reason": "a refund"}, "credit_balance"),
    (Cancellation, {}, "at_period_end"),
    (AutoTopUpRuleIn, {"threshold_minor": 1, "amount_minor": 5, "reason": "top up"}, "enabled"),
    (BillingRunRequest, {"reason": "a run"}, "backfill"),
    (
        TaxRateCreate,
        {"display_name": "VAT", "percentage": "19", "country": "DE", "reason": "vat"},
        "inclusive",
    ),
    (FeatureIn, {"feature": "sso", "kind": "boolean"}, "enabled"),
]


@pytest.mark.parametrize(("model", "body", "flag"), BODIES, ids=[m.__name__ for m, _, _ in BODIES])
@pytest.mark.parametrize("value", ["yes", "true", 1, "1"])
def test_a_flag_is_a_json_boolean(
    model: type[BaseModel], body: dict[str, Any], flag: str, value: Any
) -> None:
    with pytest.raises(ValidationError):
        model.model_validate({**body, flag: value})
    assert getattr(model.model_validate({**body, flag: True}), flag) is True
