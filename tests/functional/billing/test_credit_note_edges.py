"""Credit notes at the edges found over HTTP: a quantity whose share of the line rounds to zero minor
units, and the ``param`` of every per-line refusal, written as docs/api.md "How param writes a path" says
(``lines.0.quantity``, never ``lines[0].quantity``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.billing.conftest import World, ledger
from tests.functional.billing.credit_note_support import issue
from tests.functional.webhooks.sources import outbox
from tests.support.api import api_event, call


@pytest.fixture
def api(world: World) -> Any:
    from functions.billing_api.app import lambda_handler
    from neruba import bootstrap

    bootstrap.install(billing=world.ctx)
    return lambda_handler


def credit(api: Any, invoice_id: str, body: dict[str, Any], key: str) -> tuple[int, Any]:
    path = f"/admin/invoices/{invoice_id}/credit-notes"
    body = {"reason": "overbilled", **body}
    event = api_event("POST", path, body=body, path_parameters={"invoice_id": invoice_id},
                      headers={"Idempotency-Key": key})  # fmt: skip
    status, answer = call(api, event)[:2]
    return status, answer


def balances() -> dict[str, int]:
    return dict(ledger().balances("acme").get("USD", {}))


def test_a_quantity_worth_less_than_half_a_minor_unit_is_refused_and_writes_nothing(
    world: World, api: Any
) -> None:
    # 1052 minor units over 3006 units: one unit is worth 0.35, a tenth 0.035; both round to 0
    inv = issue(world, [("a", 1052, "3006")])
    before = balances()
    for n, quantity in enumerate(["1", "0.1"]):
        status, answer = credit(api, inv, {"lines": [{"line_id": "a", "quantity": quantity}]}, key=f"z{n}")
        assert status == 400, answer
        error = answer["error"]
        assert (error["code"], error["param"]) == ("amount_not_positive", "lines.0.quantity")
    assert balances() == before and outbox("credit_note.created") == []
    # two units are worth 0.70: one minor unit, half-up
    status, note = credit(api, inv, {"lines": [{"line_id": "a", "quantity": "2"}]}, key="two")
    assert (status, note["amount_minor"]) == (201, 1), note
    # and the last units still take exactly what is left
    status, rest = credit(api, inv, {"lines": [{"line_id": "a", "quantity": "3004"}]}, key="rest")
    assert (status, rest["amount_minor"]) == (201, 1051), rest


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ({"line_id": "zz", "amount_minor": 1}, ("invoice_line_not_found", "lines.1.line_id")),
        ({"line_id": "b"}, ("credit_note_line_amount_required", "lines.1")),
        ({"line_id": "n", "amount_minor": 1}, ("line_not_creditable", "lines.1.line_id")),
        ({"line_id": "b", "amount_minor": 0}, ("amount_not_positive", "lines.1.amount_minor")),
        ({"line_id": "b", "amount_minor": 501}, ("credit_note_exceeds_creditable", "lines.1.amount_minor")),
        ({"line_id": "b", "quantity": "2"}, ("credit_note_exceeds_creditable", "lines.1.quantity")),
        ({"line_id": "a", "amount_minor": 1}, ("credit_note_line_repeated", "lines.1.line_id")),
    ],
)
def test_each_line_refusal_names_its_line_with_the_documented_path(
    world: World, api: Any, line: dict[str, Any], expected: tuple[str, str]
) -> None:
    inv = issue(world, [("a", 1000, "10"), ("b", 500, "1"), ("n", -200, "1")])
    body = {"lines": [{"line_id": "a", "amount_minor": 1}, line]}
    status, answer = credit(api, inv, body, key="k")
    assert status in (400, 409), answer
    assert (answer["error"]["code"], answer["error"].get("param")) == expected


def test_units_left_on_a_line_whose_money_was_all_credited_by_amount_are_refused_not_a_500(
    world: World, api: Any
) -> None:
    inv = issue(world, [("a", 1000, "10"), ("b", 500, "1")])
    assert credit(api, inv, {"lines": [{"line_id": "a", "amount_minor": 1000}]}, key="all")[0] == 201
    before = balances()
    status, answer = credit(api, inv, {"lines": [{"line_id": "a", "quantity": "10"}]}, key="units")
    assert status == 409, answer
    error = answer["error"]
    assert (error["code"], error["param"]) == ("credit_note_exceeds_creditable", "lines.0.quantity")
    assert balances() == before
