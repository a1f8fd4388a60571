"""Refunds, disputes and adjustments through the real ledger handler: only against a paid payment or
invoice of that customer and currency, never above what is still refundable, cash never below zero, and
adjustments whose sign contradicts their reason code refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from neruba.settings import get_settings
from tests.functional.ledger.helpers import T0, invoice, paid
from tests.support.api import api_event, call

Api = Callable[..., tuple[int, Any]]


@pytest.fixture
def api(customers: Any) -> Api:
    from functions.ledger_api.app import lambda_handler

    def _call(method: str, path: str, body: Any = None, *, key: str | None = "k") -> tuple[int, Any]:
        headers = {"Idempotency-Key": key} if key else None
        event = api_event(method, path, body=body, headers=headers, scopes="admin read")
        status, parsed, _ = call(lambda_handler, event)
        return status, parsed

    return _call


def accounts(api: Api) -> dict[str, int]:
    status, balance = api("GET", "/v1/customers/acme/balance", key=None)
    assert status == 200
    return dict(balance["accounts"])


def postings(api: Api) -> list[str]:
    status, page = api("GET", "/v1/customers/acme/ledger", key=None)
    assert status == 200
    return [p["reason"] for p in page["data"]]


def refund(api: Api, key: str, amount: int, **target: str) -> tuple[int, Any]:
    body = {"amount_minor": amount, "reason": "r", **target}
    return api("POST", "/admin/customers/acme/refunds", body, key=key)


def dispute(api: Api, key: str, amount: int, **target: str) -> tuple[int, Any]:
    body = {"amount_minor": amount, "reason": "cb", **target}
    return api("POST", "/admin/customers/acme/disputes", body, key=key)


@pytest.mark.parametrize("action", [refund, dispute])
@pytest.mark.parametrize(
    ("setup", "target", "status", "code"),
    [
        ("finalized", {"invoice_id": "in_1"}, 409, "invoice_not_paid"),
        ("draft", {"invoice_id": "in_1"}, 409, "invoice_not_paid"),
        ("payment_failed", {"invoice_id": "in_1"}, 409, "invoice_not_paid"),
        (None, {"invoice_id": "in_missing"}, 404, "invoice_not_found"),
        ("other_customer", {"invoice_id": "in_1"}, 404, "invoice_not_found"),
        (None, {"payment_id": "ch_missing"}, 404, "payment_not_found"),
        ("other_customer", {"payment_id": "ch_in_1"}, 404, "payment_not_found"),
        ("paid", {"payment_id": "ch_in_1", "invoice_id": "in_2"}, 400, "payment_invoice_mismatch"),
        ("paid_in_eur", {"payment_id": "ch_in_1"}, 400, "currency_mismatch"),
        ("paid_by_credit", {"invoice_id": "in_1"}, 409, "exceeds_refundable"),
    ],
)
def test_refund_or_dispute_without_a_paid_payment_is_refused_and_writes_nothing(
    api: Api, action: Any, setup: str | None, target: dict[str, str], status: int, code: str
) -> None:
    # GIVEN an invoice of 1000 in some state (or none)
    if setup in ("finalized", "draft", "paid_by_credit"):  # paid_by_credit: paid, nothing collected
        invoice("in_1", "paid" if setup == "paid_by_credit" else setup)
    elif setup == "payment_failed":
        from neruba.dal.invoices import InvoicesRepository

        invoice("in_1", "finalized")
        InvoicesRepository(get_settings().billing_table).set_status("in_1", setup, expected="finalized")
    elif setup == "other_customer":
        paid("in_1", 1000, customer="yen-co", currency="JPY")
    elif setup == "paid":
        paid("in_1", 1000)
    elif setup == "paid_in_eur":
        paid("in_1", 1000, currency="EUR")
    before, reasons = accounts(api), postings(api)
    # WHEN an operator refunds (or disputes) 900000 against it
    got, error = action(api, "k1", 900000 if setup != "paid" else 10, **target)
    # THEN a 4xx with its code, and nothing written: cash unchanged, no posting
    expected = f"{action.__name__}_{code}" if code == "exceeds_refundable" else code
    assert (got, error["error"]["code"]) == (status, expected), error
    assert accounts(api) == before and postings(api) == reasons
    assert before.get("cash", 0) >= 0


def test_refunds_never_exceed_what_was_paid(api: Api) -> None:
    # GIVEN an invoice of 1000 paid by ch_in_1
    paid("in_1", 1000)
    # WHEN refunds of 600 (by invoice) and 300 (by payment) pass, then 101 more is asked
    assert refund(api, "r1", 600, invoice_id="in_1")[0] == 201
    assert refund(api, "r2", 300, payment_id="ch_in_1")[0] == 201
    status, error = refund(api, "r3", 101, invoice_id="in_1")
    # THEN the third is refused with what is left, and the first two name the payment and invoice
    assert (status, error["error"]["code"]) == (409, "refund_exceeds_refundable")
    assert "100 still refundable" in error["error"]["message"]
    assert refund(api, "r4", 100, invoice_id="in_1")[0] == 201
    assert accounts(api).get("cash", 0) == 0 and accounts(api)["refunds"] == 1000
    # AND a retry of an accepted refund returns its first answer though nothing is refundable any more
    again = refund(api, "r1", 600, invoice_id="in_1")
    assert again[0] == 201 and again[1]["payment_id"] == "ch_in_1" and again[1]["invoice_id"] == "in_1"


def test_the_issue_example_a_huge_refund_of_a_never_paid_invoice(api: Api) -> None:
    # GIVEN a finalized, never paid invoice of 1000
    invoice("in_1", "finalized")
    # WHEN 900000 is refunded against it, and against an invoice that does not exist
    first = refund(api, "a", 900000, invoice_id="in_1")
    second = refund(api, "b", 900000, invoice_id="in_nope")
    # THEN both are refused and cash never moved
    assert (first[0], second[0]) == (409, 404)
    assert "cash" not in accounts(api)


def test_disputes_hold_refundable_money_and_their_outcome_gives_it_back_or_not(api: Api) -> None:
    # GIVEN an invoice of 1000 paid
    paid("in_1", 1000)
    # WHEN a dispute of 700 opens, a refund of 400 is asked, and a refund of 300 passes
    status, opened = dispute(api, "d1", 700, invoice_id="in_1")
    assert status == 201 and opened["payment_id"] == "ch_in_1"
    assert refund(api, "r1", 400, invoice_id="in_1")[1]["error"]["code"] == "refund_exceeds_refundable"
    assert refund(api, "r2", 300, invoice_id="in_1")[0] == 201
    # AND a second dispute finds nothing left
    assert dispute(api, "d2", 1, invoice_id="in_1")[1]["error"]["code"] == "dispute_exceeds_refundable"
    # WHEN the dispute is won, the 700 is refundable again
    assert api("POST", f"/admin/disputes/{opened['id']}/close", {"outcome": "won", "reason": "ok"})[0] == 200
    assert refund(api, "r3", 700, payment_id="ch_in_1")[0] == 201
    assert accounts(api).get("cash", 0) == 0


def test_a_lost_dispute_keeps_its_amount_taken(api: Api) -> None:
    paid("in_1", 1000)
    _, opened = dispute(api, "d1", 600, payment_id="ch_in_1")
    assert api("POST", f"/admin/disputes/{opened['id']}/close", {"outcome": "lost", "reason": "x"})[0] == 200
    assert refund(api, "r1", 401, invoice_id="in_1")[1]["error"]["code"] == "refund_exceeds_refundable"
    assert refund(api, "r2", 400, invoice_id="in_1")[0] == 201
    assert accounts(api).get("cash", 0) == 0 and accounts(api)["dispute_losses"] == 600


@pytest.mark.parametrize("code", ["goodwill", "refund", "dispute"])
def test_an_adjustment_against_its_reason_codes_direction_is_refused(api: Api, code: str) -> None:
    # WHEN goodwill (or a refund or dispute write-off) of -300 is asked: it would raise the amount due
    body = {"amount_minor": -300, "reason_code": code, "reason": "outage"}
    status, error = api("POST", "/admin/customers/acme/balance-adjustments", body, key="a1")
    # THEN 400 naming amount_minor, and nothing posted
    assert (status, error["error"]["code"], error["error"]["param"]) == (
        400,
        "adjustment_direction_invalid",
        "amount_minor",
    )
    assert postings(api) == []
    # AND the same amount as a correction raises the amount due; a positive goodwill lowers it
    body = {"amount_minor": -300, "reason_code": "correction", "reason": "under-billed"}
    assert api("POST", "/admin/customers/acme/balance-adjustments", body, key="a2")[0] == 201
    body = {"amount_minor": 100, "reason_code": code, "reason": "outage"}
    _, done = api("POST", "/admin/customers/acme/balance-adjustments", body, key="a3")
    assert done["balance"]["amount_due_minor"] == 200


def test_two_concurrent_refunds_from_the_same_read_cannot_both_pass(api: Api) -> None:
    from neruba.dal.ledger import LedgerConflictError, LedgerRepository
    from neruba.dal.payments import PaymentsRepository
    from neruba.logic.ledger.postings import record_refund

    # GIVEN a payment of 1000, read by two refund requests before either writes (each asks 600)
    ledger = LedgerRepository(get_settings().ledger_table)
    paid("in_1", 1000)
    read = PaymentsRepository(ledger.table_name).get("acme", "ch_in_1")
    assert read is not None and read.refundable_minor == 1000

    def write(key: str) -> None:
        record_refund(
            ledger, customer_id="acme", currency="USD", amount_minor=600, refund_id=key,
            idempotency_key=key, source="operator", actor="t", payment=read,
        )  # fmt: skip

    # WHEN both write: each passed its check on what it read
    write("race:1")
    # THEN the second write is refused by its own condition, and nothing of it is stored
    with pytest.raises(LedgerConflictError):
        write("race:2")
    assert accounts(api)["cash"] == 400 and accounts(api)["refunds"] == 600
    after = PaymentsRepository(ledger.table_name).get("acme", "ch_in_1")
    assert after is not None and (after.refunded_minor, after.refundable_minor) == (600, 400)


def test_no_posting_takes_cash_below_zero(api: Api) -> None:
    from neruba.dal.ledger import LedgerConflictError, LedgerRepository
    from neruba.domain.ledger import Posting, credit, debit

    # GIVEN 1000 of cash received
    ledger = LedgerRepository(get_settings().ledger_table)
    paid("in_1", 1000)

    def give_back(key: str, amount: int) -> Posting:
        return Posting.build(
            idempotency_key=key, customer_id="acme", currency="USD",
            entries=[debit("refunds", amount), credit("cash", amount)], reason="refund",
            source="operator", source_id=None, actor="t", at=T0,
        )  # fmt: skip

    # WHEN any posting (whatever built it) would take 1001 out of the cash
    with pytest.raises(LedgerConflictError):
        ledger.post(give_back("x1", 1001))
    # THEN it is refused whole; exactly 1000 still passes
    assert accounts(api)["cash"] == 1000
    ledger.post(give_back("x2", 1000))
    assert accounts(api).get("cash", 0) == 0


def test_payments_posted_before_payment_records_get_one_from_the_migration(api: Api) -> None:
    from neruba.dal.disputes import DisputesRepository
    from neruba.dal.ledger import LedgerRepository
    from neruba.dal.payments import PaymentsRepository
    from neruba.domain.ledger import Posting, credit, debit
    from neruba.migrations import MigrationContext
    from neruba.migrations.m0003_payment_records import apply

    # GIVEN, as stored before payment records existed: a payment of 1000 for in_1 (no record), a refund
    # of 300 naming only the invoice, and an open dispute of 200 naming the charge
    ledger = LedgerRepository(get_settings().ledger_table)
    invoice("in_1", "paid")

    def post(key: str, reason: str, entries: list[Any], **metadata: Any) -> None:
        ledger.post(
            Posting.build(
                idempotency_key=key, customer_id="acme", currency="USD", entries=entries, reason=reason,
                source="stripe", source_id=metadata.pop("source_id", None), actor="t", at=T0,
                metadata=metadata,
            )
        )  # fmt: skip

    post(
        "p", "payment", [debit("cash", 1000), credit("receivable", 1000)], source_id="ch_1", invoice_id="in_1"
    )
    post("r", "refund", [debit("refunds", 300), credit("cash", 300)], payment_id="re_x", invoice_id="in_1")
    disputes = DisputesRepository(ledger.table_name)
    dispute = {"id": "dp_old", "object": "dispute", "customer_id": "acme", "currency": "USD",
               "amount_minor": 200, "payment_id": "ch_1", "invoice_id": "in_1", "status": "open"}  # fmt: skip
    ledger.post(
        Posting.build(
            idempotency_key="d", customer_id="acme", currency="USD", reason="dispute_created",
            entries=[debit("disputes", 200), credit("cash", 200)], source="stripe", source_id="dp_old",
            actor="t", at=T0,
        ),
        [disputes.open_item(dispute)],
    )  # fmt: skip
    assert refund(api, "before", 1, invoice_id="in_1")[1]["error"]["code"] == "refund_exceeds_refundable"
    # WHEN the migration runs, twice
    ctx = MigrationContext(settings=get_settings(), now=T0)
    first, second = apply(ctx), apply(ctx)
    # THEN one record: 1000 paid, 300 refunded, 200 disputed, 500 left; the second run writes nothing
    assert (first["written"], second["written"], second["skipped"]) == (1, 0, 1)
    record = PaymentsRepository(ledger.table_name).get("acme", "ch_1")
    assert record is not None and (record.refunded_minor, record.disputed_minor, record.refundable_minor) == (
        300,
        200,
        500,
    )
    # AND the old dispute, won, makes its 200 refundable again; refunds now follow the rules
    assert api("POST", "/admin/disputes/dp_old/close", {"outcome": "won", "reason": "ok"})[0] == 200
    assert refund(api, "after", 701, invoice_id="in_1")[1]["error"]["code"] == "refund_exceeds_refundable"
    assert refund(api, "after2", 700, invoice_id="in_1")[0] == 201
