"""Credit notes against taxed (and discounted) invoices, over HTTP-shaped events: each credited line takes
its share of the line's tax (exclusive: the tax of the credited net by the one rounding rule; inclusive:
the credited amount contains its tax), the last credit of a line takes exactly what is left of its tax,
the note shows its tax, and its posting gives the tax back from ``tax_payable``: after every note the
ledger reconciles and, once the invoice is wholly credited, revenue, receivable and tax_payable are 0."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.billing.conftest import World
from tests.functional.billing.credit_note_support import issue, pay, percent_off, rate
from tests.functional.billing.test_credit_notes import assert_consistent, balances, credit, get, invoice
from tests.functional.webhooks.sources import outbox


@pytest.fixture
def api(world: World) -> Any:
    from functions.billing_api.app import lambda_handler
    from neruba import bootstrap

    bootstrap.install(billing=world.ctx)
    return lambda_handler


def _tax(note: dict[str, Any]) -> tuple[int, int, int, int]:
    return note["subtotal_minor"], note["tax_minor"], note["tax_included_minor"], note["amount_minor"]


def _books_empty() -> None:
    left = balances()
    assert (left.get("revenue", 0), left.get("receivable", 0), left.get("tax_payable", 0)) == (0, 0, 0), left


def test_whole_exclusive_taxed_invoice_credits_its_tax(world: World, api: Any) -> None:
    inv = issue(world, [("a", 1000, "10"), ("b", 333, "1")], name="tx1", rates=[rate("txr_vat", "20")])
    assert invoice(api, inv)["total_minor"] == 1000 + 333 + 200 + 67  # 66.6 rounds half-up once
    assert balances()["tax_payable"] == -267

    status, note = credit(api, inv, {})

    assert status == 201, note
    assert _tax(note) == (1333, 267, 0, 1600)
    assert [
        (line["line_id"], line["amount_minor"], line["tax"]["exclusive_minor"]) for line in note["lines"]
    ] == [
        ("a", 1000, 200),
        ("b", 333, 67),
    ]
    assert note["lines"][0]["tax"]["rates"] == [
        {"tax_rate_id": "txr_vat", "percentage": "20", "inclusive": False, "amount_minor": 200}
    ]
    shown = invoice(api, inv)
    assert (shown["status"], shown["credited_minor"], shown["amount_remaining_minor"]) == ("paid", 1600, 0)
    explained = get(api, f"/v1/credit-notes/{note['id']}/explain", credit_note_id=note["id"])
    assert sorted(
        (e["account"], e["debit_minor"], e["credit_minor"]) for e in explained["posting"]["entries"]
    ) == [
        ("receivable", 0, 1600),
        ("revenue", 1333, 0),
        ("tax_payable", 267, 0),
    ]
    [event] = outbox("credit_note.created")
    assert (event["data"]["subtotal_minor"], event["data"]["tax_minor"], event["data"]["amount_minor"]) == (
        1333,
        267,
        1600,
    )
    _books_empty()
    assert_consistent(world)


def test_by_amount_then_the_rest_the_last_credit_takes_what_is_left_of_the_tax(
    world: World, api: Any
) -> None:
    # 1001 at 7.5% is 75.075: 75 of tax on the line
    inv = issue(world, [("a", 1001, "3")], name="tx2", rates=[rate("txr_s", "7.5")])
    first = credit(api, inv, {"lines": [{"line_id": "a", "amount_minor": 334}]}, key="k1")[1]
    assert _tax(first) == (334, 25, 0, 359)  # 25.05 -> 25
    second = credit(api, inv, {"lines": [{"line_id": "a", "amount_minor": 334}]}, key="k2")[1]
    assert _tax(second) == (334, 25, 0, 359)
    assert_consistent(world)
    status, too_much = credit(api, inv, {"lines": [{"line_id": "a", "amount_minor": 334}]}, key="k3")
    assert (status, too_much["error"]["code"]) == (409, "credit_note_exceeds_creditable")
    last = credit(api, inv, {"lines": [{"line_id": "a", "amount_minor": 333}]}, key="k4")[1]
    assert _tax(last) == (333, 25, 0, 358)  # 24.975 would round to 25: exactly what is left either way
    assert (
        first["amount_minor"] + second["amount_minor"] + last["amount_minor"]
        == invoice(api, inv)["total_minor"]
    )
    _books_empty()
    assert_consistent(world)


def test_by_quantity_the_rounding_never_credits_more_tax_than_the_line_has(world: World, api: Any) -> None:
    # 50 at 5% is 2.5: 3 of tax; five credits of 10 would each round 0.5 up to 1
    inv = issue(world, [("a", 50, "5")], name="tx3", rates=[rate("txr_5", "5")])
    notes = [
        credit(api, inv, {"lines": [{"line_id": "a", "quantity": "1"}]}, key=f"q{n}")[1] for n in range(5)
    ]
    assert [n["tax_minor"] for n in notes] == [1, 1, 1, 0, 0]
    assert sum(n["amount_minor"] for n in notes) == 53 == invoice(api, inv)["total_minor"]
    _books_empty()
    assert_consistent(world)


def test_partial_then_whole_credits_the_remaining_amount_and_tax(world: World, api: Any) -> None:
    inv = issue(world, [("a", 1000, "10"), ("b", 500, "1")], name="tx4", rates=[rate("txr_vat", "20")])
    first = credit(api, inv, {"lines": [{"line_id": "a", "quantity": "3"}]}, key="k1")[1]
    assert _tax(first) == (300, 60, 0, 360)
    rest = credit(api, inv, {}, key="k2")[1]
    assert _tax(rest) == (1200, 240, 0, 1440)
    lines = get(api, f"/v1/invoices/{inv}/explain", invoice_id=inv)["lines"]
    assert [line["credited"] for line in lines] == [
        {"amount_minor": 1000, "quantity": "10", "tax": {"txr_vat": 200}},
        {"amount_minor": 500, "quantity": "1", "tax": {"txr_vat": 100}},
    ]
    assert [(line["line_id"], line["amount_minor"], line["quantity"]) for line in rest["lines"]] == [
        ("a", 700, "7"),
        ("b", 500, "1"),
    ]
    assert credit(api, inv, {}, key="k3")[1]["error"]["code"] == "credit_note_exceeds_creditable"
    _books_empty()
    assert_consistent(world)


def test_inclusive_tax_is_inside_the_credited_amount(world: World, api: Any) -> None:
    # 1000 with 20% inclusive contains 166.67: 167 of tax, 833 net
    inv = issue(world, [("a", 1000, "1")], name="tx5", rates=[rate("txr_inc", "20", inclusive=True)])
    assert invoice(api, inv)["total_minor"] == 1000
    half = credit(api, inv, {"lines": [{"line_id": "a", "amount_minor": 500}]}, key="k1")[1]
    assert _tax(half) == (500, 0, 83, 500)  # 500 - 500 / 1.2 = 83.33
    explained = get(api, f"/v1/credit-notes/{half['id']}/explain", credit_note_id=half["id"])
    assert sorted(
        (e["account"], e["debit_minor"], e["credit_minor"]) for e in explained["posting"]["entries"]
    ) == [
        ("receivable", 0, 500),
        ("revenue", 417, 0),
        ("tax_payable", 83, 0),
    ]
    rest = credit(api, inv, {}, key="k2")[1]
    assert _tax(rest) == (500, 0, 84, 500)  # what is left of the 167
    _books_empty()
    assert_consistent(world)


def test_mixed_rates_and_a_discounted_line_credit_at_most_what_was_billed(world: World, api: Any) -> None:
    rates = [rate("txr_inc", "10", inclusive=True), rate("txr_ex", "5")]
    inv = issue(world, [("a", 1000, "1"), ("b", 200, "1")], name="tx6", rates=rates,
                discounts=[percent_off("di_1", "10")])  # fmt: skip
    shown = invoice(api, inv)
    # a: 900 after the discount, contains 81.82 -> 82, net 818, +5% = 40.9 -> 41
    # b: 180 after the discount, contains 16.36 -> 16, net 164, +5% = 8.2 -> 8
    assert (shown["subtotal_minor"], shown["tax_included_minor"], shown["tax_minor"]) == (1080, 98, 49)
    status, refused = credit(api, inv, {"lines": [{"line_id": "a", "amount_minor": 901}]}, key="k0")
    assert (status, refused["error"]["code"]) == (409, "credit_note_exceeds_creditable")
    status, refused = credit(api, inv, {"lines": [{"line_id": "discount:di_1", "amount_minor": 1}]}, key="k9")
    assert (status, refused["error"]["code"]) == (400, "line_not_creditable")
    part = credit(api, inv, {"lines": [{"line_id": "a", "amount_minor": 450}]}, key="k1")[1]
    assert _tax(part) == (450, 20, 41, 470)  # 450 contains 40.91 -> 41; 5% of 409 = 20.45 -> 20
    rest = credit(api, inv, {}, key="k2")[1]
    assert _tax(rest) == (630, 29, 57, 659)
    assert part["amount_minor"] + rest["amount_minor"] == shown["total_minor"] == 1129
    _books_empty()
    assert_consistent(world)


def test_a_paid_taxed_invoice_credits_to_the_balance_and_refunds(world: World, api: Any) -> None:
    inv = issue(world, [("a", 1000, "1")], name="tx7", rates=[rate("txr_vat", "20")])
    pay(world, inv, 1200)
    body = {"lines": [{"line_id": "a", "amount_minor": 500}], "refund_amount_minor": 600}
    status, note = credit(api, inv, body, key="k1")
    assert status == 201, note
    assert (note["amount_minor"], note["tax_minor"], note["refund_amount_minor"]) == (600, 100, 600)
    assert balances()["tax_payable"] == -100
    assert_consistent(world)
