"""What the answers say of a customer whose tax Stripe Tax computes: the invoice's ``tax_location`` is a
declared, typed field (served, in docs/openapi.json and in the client), and the upcoming invoice says the
tax is Stripe's, computed at finalization, instead of showing a tax of 0."""

from __future__ import annotations

import json
from typing import Any

import pytest

from neruba_tools.local.fake_stripe import FakeStripe
from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day
from tests.functional.stripe.test_end_to_end import CUSTOMER
from tests.functional.stripe.test_stripe_tax import VAT, _admin, _bill, _place


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


def test_the_upcoming_invoice_of_a_delegated_customer_says_stripe_computes_its_tax(
    fake: FakeStripe, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.logic.billing.upcoming import upcoming_invoice
    from neruba.models.views import UpcomingInvoice
    from neruba_client.models import UpcomingInvoice as ClientUpcoming

    # GIVEN a Neruba rate for DE and acme subscribed, with usage in its period
    assert _admin(world, "POST", "/admin/tax-rates", VAT, "t-1")[0] == 201
    world.subscribe(CUSTOMER)
    world.usage(CUSTOMER, START + day(0, 3), 100)

    def preview() -> dict[str, Any]:
        body = upcoming_invoice(world.plans, world.ctx.usage, CUSTOMER, START + day(0, 5), world.ctx.billing)
        served = json.loads(json.dumps(body, default=str))
        UpcomingInvoice.model_validate(served)  # the served model and the client's accept it
        ClientUpcoming.model_validate(served)
        [window] = body["windows"]
        return dict(window)

    # WHEN taxed by Neruba in DE: its tax now
    _place(world, "neruba")
    ours = preview()
    assert (ours["tax_status"], ours["tax_minor"], ours["total_minor"]) == ("computed", 200, 1200)
    assert "tax_provider" not in ours
    # WHEN delegated to Stripe Tax: no tax amount, said explicitly, total before tax
    body = {"country": "DE", "provider": "stripe_tax", "reason": "moved to Stripe Tax"}
    assert _admin(world, "PUT", f"/admin/customers/{CUSTOMER}/tax-jurisdiction", body, "j-2")[0] == 200
    delegated = preview()
    assert (delegated["tax_provider"], delegated["tax_status"]) == (
        "stripe_tax", "computed_by_stripe_at_finalization")  # fmt: skip
    assert (delegated["tax_minor"], delegated["tax_included_minor"], delegated["total_minor"]) == (
        None, None, 1000)  # fmt: skip
    assert delegated["tax_location"] == {"country": "DE", "state": None}
