"""What the answers say of a customer whose tax Stripe Tax computes: the invoice's ``tax_location`` is a
declared, typed field (served, in docs/openapi.json and in the client), and the upcoming invoice says the
tax is Stripe's, computed at finalization, instead of showing a tax of 0."""

from __future__ import annotations

import json
from typing import Any

import pytest

from neruba_tools.local.fake_stripe import FakeStripe
from tests.functional.billing.conftest import World
from tests.functional.stripe.test_stripe_tax import _bill, _place


def _get(path: str, params: dict[str, str]) -> tuple[int, Any]:
    from functions.billing_api.app import lambda_handler
    from tests.support.api import api_event, call

    status, answer, _ = call(lambda_handler, api_event("GET", path, path_parameters=params))
    return status, answer


def test_the_invoice_answer_declares_its_tax_location(
    fake: FakeStripe, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a delegated invoice billed for a customer placed in DE
    _place(world, "stripe_tax")
    usage = _bill(world, monkeypatch)
    # WHEN it is read over HTTP
    status, shown = _get(f"/v1/invoices/{usage['id']}", {"invoice_id": usage["id"]})
    assert status == 200, shown
    # THEN the answer's tax_location is the documented, typed field, in the client's model too
    from neruba_client.models import Invoice

    parsed = Invoice.model_validate(shown)
    assert parsed.tax_location is not None
    assert (parsed.tax_location.country, parsed.tax_location.state) == ("DE", None)
    from pathlib import Path

    document = json.loads((Path(__file__).resolve().parents[3] / "docs" / "openapi.json").read_text())
    schemas = document["components"]["schemas"]
    assert "tax_location" in schemas["Invoice"]["properties"]
    assert set(schemas["InvoiceTaxLocation"]["properties"]) == {"country", "state"}
