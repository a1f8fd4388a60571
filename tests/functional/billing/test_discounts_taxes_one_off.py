"""A one-off charge invoiced at once is discounted and taxed by the rules of a period invoice (the
customer's discounts, the rates of its jurisdiction), posted with its tax; its webhook events carry the
discount and tax totals; the discounts' billing periods are left to the period invoices."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.billing.conftest import World, assert_books_agree, ledger
from tests.functional.billing.test_discounts_taxes import PERCENT, VAT, _attach, _coupon, _post, _used
from tests.functional.webhooks.sources import outbox


@pytest.fixture
def api(world: World) -> Any:
    from functions.billing_api.app import lambda_handler
    from neruba import bootstrap

    bootstrap.install(billing=world.ctx)
    return lambda_handler


def test_a_one_off_invoice_is_discounted_and_taxed(world: World, api: Any) -> None:
    world.subscribe("acme")
    assert _post(api, "/admin/tax-rates", VAT, "t-1")[0] == 201
    place = {"country": "DE", "reason": "head office"}
    assert _post(api, "/admin/customers/acme/tax-jurisdiction", place, "j-1", method="PUT")[0] == 200
    discount = _attach(api, _coupon(api, PERCENT)["id"], customer_id="acme")

    fee = {"description": "Setup", "amount_minor": 1000, "currency": "USD", "reason": "onboarding",
           "mode": "invoice_now"}  # fmt: skip
    status, charge = _post(api, "/admin/customers/acme/one-off-charges", fee, "o-1")
    assert status == 201, charge

    [invoice] = [i for i in world.invoices("acme") if i["id"] == charge["invoice_id"]]
    by_kind = {line["kind"]: line for line in invoice["lines"]}
    # 12.5% of 1000 = 125 off; 20% of the 875 left = 175 on top
    assert by_kind["discount"]["amount_minor"] == -125
    assert by_kind["one_off"]["tax"]["exclusive_minor"] == 175
    totals = ("subtotal_minor", "discounts_minor", "tax_minor", "total_minor")
    assert tuple(invoice[k] for k in totals) == (875, 125, 175, 1050)
    for kind in ("invoice.created", "invoice.finalized"):
        [data] = [e["data"] for e in outbox(kind) if e["data"]["id"] == invoice["id"]]
        assert (data["subtotal_minor"], data["discounts_minor"], data["tax_minor"], data["total_minor"]) == (
            875, 125, 175, 1050)  # fmt: skip
    assert ledger().balances("acme")["USD"]["tax_payable"] == -175
    assert _used(world, discount["id"]) == 0
    assert_books_agree(world, "acme")


def test_the_upcoming_invoice_shows_pending_one_off_charges_discounted_and_taxed(
    world: World, api: Any
) -> None:
    from neruba.logic.billing.upcoming import upcoming_invoice
    from tests.functional.billing.conftest import START
    from tests.functional.billing.helpers import day

    world.subscribe("acme")
    assert _post(api, "/admin/tax-rates", VAT, "t-1")[0] == 201
    place = {"country": "DE", "reason": "head office"}
    assert _post(api, "/admin/customers/acme/tax-jurisdiction", place, "j-1", method="PUT")[0] == 200
    _attach(api, _coupon(api, PERCENT)["id"], customer_id="acme")
    fee = {"description": "Training", "amount_minor": 1000, "currency": "USD", "reason": "services",
           "mode": "next_invoice"}  # fmt: skip
    status, charge = _post(api, "/admin/customers/acme/one-off-charges", fee, "o-1")
    assert status == 201 and charge["status"] == "pending", charge
    world.usage("acme", START + day(0, 2), 3)

    body = upcoming_invoice(world.plans, world.ctx.usage, "acme", START + day(0, 5), world.ctx.billing)

    [window] = body["windows"]
    [line] = [ln for ln in window["lines"] if ln["kind"] == "one_off"]
    assert line["pending"] is True and line["line_id"] == f"one_off:{charge['id']}"
    assert line["amount_minor"] == 1000
    # 30 of usage + 1000: 12.5% off the 1030 is 128.75 -> 129; 20% VAT on the 901 left: 180.2 -> 180
    assert (window["subtotal_minor"], window["discounts_minor"], window["tax_minor"]) == (901, 129, 180)
    assert window["total_minor"] == 1081
    assert (
        line["tax"]["exclusive_minor"]
        + next(ln["tax"]["exclusive_minor"] for ln in window["lines"] if ln["kind"] == "usage")
        == 180
    )
