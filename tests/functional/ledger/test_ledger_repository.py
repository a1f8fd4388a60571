"""The ledger repository on moto: idempotent postings, grant consumption, expiry, reconciliation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest import mock

import pytest

from neruba.dal.clients import client
from neruba.dal.ledger import POSTING_GUARD
from neruba.dal.transaction import Cancelled, Transaction
from neruba.domain.credits import CreditApplication, Line, allocate
from neruba.domain.ledger import Entry, Posting
from neruba.logic.ledger.credits import check_auto_top_up, create_grant, expire_due
from neruba.logic.ledger.postings import invoice_posting, record_payment
from tests.functional.ledger.conftest import T0


def _payment(key: str = "payment:pay_1", amount: int = 500) -> Posting:
    return Posting.build(
        idempotency_key=key,
        customer_id="acme",
        currency="USD",
        entries=[Entry("cash", debit_minor=amount), Entry("receivable", credit_minor=amount)],
        reason="payment",
        source="payment",
        source_id="pay_1",
        actor="test",
        at=T0,
    )


def _count_postings(ledger: Any, customer_id: str = "acme") -> int:
    return len(ledger.postings(customer_id, 100)[0])


def test_a_retried_posting_is_written_once_and_returns_the_stored_one(ledger: Any) -> None:
    # GIVEN a posting written once
    first = ledger.post(_payment())
    # WHEN the same idempotency key is posted again, even at another time
    again = ledger.post(
        _payment().__class__.build(
            idempotency_key="payment:pay_1",
            customer_id="acme",
            currency="USD",
            entries=[Entry("cash", debit_minor=500), Entry("receivable", credit_minor=500)],
            reason="payment",
            source="payment",
            source_id="pay_1",
            actor="test",
            at=T0 + timedelta(hours=1),
        )
    )
    # THEN one posting exists, the retry got the stored one, and the balances moved once
    assert again == first
    assert _count_postings(ledger) == 1
    assert ledger.balances("acme") == {"USD": {"cash": 500, "receivable": -500}}
    assert ledger.reconcile("acme") == []


def test_a_transaction_killed_midway_leaves_nothing(ledger: Any) -> None:
    # GIVEN a transaction whose last action fails its condition (a grant that does not exist)
    items = ledger.posting_items(_payment()) + ledger.grant_consumption_items(
        [CreditApplication("cg_missing", "l1", 10)], at=T0
    )
    # WHEN it runs
    with pytest.raises(Exception, match="TransactionCanceled"):
        client("dynamodb").transact_write_items(TransactItems=items)
    # THEN no posting, guard or balance was written, and a later attempt succeeds
    assert ledger.stored_posting("acme", "payment:pay_1") is None
    assert ledger.balances("acme") == {}
    assert ledger.post(_payment()).total_minor == 500


def test_a_crash_before_the_transaction_then_a_retry_posts_once(ledger: Any) -> None:
    # GIVEN the first attempt dies in the network call (nothing reached DynamoDB)
    real = client("dynamodb").transact_write_items
    with (
        mock.patch.object(client("dynamodb"), "transact_write_items", side_effect=ConnectionError("killed")),
        pytest.raises(ConnectionError),
    ):
        ledger.post(_payment())
    # WHEN the caller retries twice (the second is a duplicate delivery)
    assert real is not None
    ledger.post(_payment())
    ledger.post(_payment())
    # THEN exactly one posting
    assert _count_postings(ledger) == 1


def test_invoice_with_credits_consumes_grants_conditionally(ledger: Any) -> None:
    # GIVEN a promotional grant of 300 and an invoice of 1000
    grant, _ = create_grant(
        ledger,
        customer_id="acme",
        kind="promotional",
        amount_minor=300,
        currency="USD",
        idempotency_key="g1",
        actor="test",
        at=T0,
    )
    at = T0 + timedelta(days=1)
    grants = ledger.grants("acme", "USD", at)
    apps = allocate(grants, [Line("l1", None, 1000)], at)
    posting = invoice_posting("acme", "in_1", "USD", 1000, apps, at)
    unit = Transaction().extend(ledger.posting_items(posting), name=POSTING_GUARD)
    unit.extend(ledger.grant_consumption_items(apps, at=at), name="grants")
    # WHEN billing runs the transaction twice (a retry)
    unit.commit()
    with pytest.raises(Cancelled) as raised:
        unit.commit()
    # THEN the retry is recognised, the grant was consumed once, and everything reconciles
    assert ledger.retried_posting(raised.value) == posting
    assert ledger.grant(grant.grant_id).remaining_minor == 0
    assert ledger.balances("acme")["USD"]["receivable"] == 700
    assert ledger.reconcile("acme") == []


def test_a_grant_cannot_be_consumed_below_zero(ledger: Any) -> None:
    # GIVEN a grant of 100
    grant, _ = create_grant(
        ledger,
        customer_id="acme",
        kind="purchased",
        amount_minor=100,
        currency="USD",
        idempotency_key="g1",
        actor="test",
        at=T0,
    )
    # WHEN two invoices each try to take 80 from it
    from neruba.dal.ledger import LedgerConflictError

    for n, expect_ok in ((1, True), (2, False)):
        apps = [CreditApplication(grant.grant_id, "l1", 80, "purchased")]
        posting = invoice_posting("acme", f"in_{n}", "USD", 80, apps, T0 + timedelta(hours=n))
        if expect_ok:
            ledger.post(posting, ledger.grant_consumption_items(apps, at=T0 + timedelta(hours=n)))
        else:
            with pytest.raises(LedgerConflictError):
                ledger.post(posting, ledger.grant_consumption_items(apps, at=T0 + timedelta(hours=n)))
    # THEN the second is refused whole: the grant keeps 20 and only one invoice posted
    assert ledger.grant(grant.grant_id).remaining_minor == 20
    assert ledger.stored_posting("acme", "invoice:in_2") is None
    assert ledger.reconcile("acme") == []


def test_expiry_posts_at_the_exact_moment_once_and_blocks_later_use(ledger: Any) -> None:
    # GIVEN a grant of 500 expiring at T0 + 1 day
    expires = T0 + timedelta(days=1)
    grant, _ = create_grant(
        ledger,
        customer_id="acme",
        kind="purchased",
        amount_minor=500,
        currency="USD",
        idempotency_key="g1",
        actor="test",
        at=T0,
        expires_at=expires,
    )
    # WHEN the expiry job runs before, then twice after the expiry
    assert expire_due(ledger, expires - timedelta(seconds=1))["expired"] == []
    report = expire_due(ledger, expires + timedelta(minutes=5))
    again = expire_due(ledger, expires + timedelta(minutes=10))
    # THEN one expiry posting effective exactly at expires_at, and the remainder can never be applied
    assert report["expired"] == [grant.grant_id] and again["expired"] == []
    expiry = ledger.stored_posting("acme", f"expiry:{grant.grant_id}")
    assert expiry.effective_at == expires and expiry.total_minor == 500
    assert ledger.grant(grant.grant_id).status == "expired"
    assert (
        allocate(ledger.grants("acme", "USD", expires - timedelta(seconds=1)), [Line("l", None, 9)], T0) == []
    )
    assert ledger.balances("acme")["USD"]["breakage"] == -500
    assert ledger.reconcile("acme") == []


def test_consuming_an_expired_grant_before_the_job_runs_is_refused(ledger: Any) -> None:
    # GIVEN a grant that expired a minute ago (the job has not run yet), allocated at an earlier time
    from datetime import UTC, datetime

    from neruba.dal.ledger import LedgerConflictError

    now = datetime.now(UTC)
    grant, _ = create_grant(
        ledger,
        customer_id="acme",
        kind="purchased",
        amount_minor=500,
        currency="USD",
        idempotency_key="g1",
        actor="test",
        at=now - timedelta(days=2),
        expires_at=now - timedelta(minutes=1),
    )
    apps = [CreditApplication(grant.grant_id, "l1", 100, "purchased")]
    posting = invoice_posting("acme", "in_1", "USD", 100, apps, now - timedelta(days=1))
    # WHEN billing applies it with an allocation time before the expiry
    with pytest.raises(LedgerConflictError):
        ledger.post(posting, ledger.grant_consumption_items(apps, at=now - timedelta(days=1)))
    # THEN nothing was applied
    assert ledger.grant(grant.grant_id).remaining_minor == 500


def test_reconcile_reports_a_drifted_balance(ledger: Any) -> None:
    # GIVEN a posting and then a materialised balance changed behind the ledger's back
    ledger.post(_payment())
    client("dynamodb").update_item(
        TableName=ledger.table_name,
        Key={"pk": {"S": "CUS#acme"}, "sk": {"S": "BAL#USD#cash"}},
        UpdateExpression="ADD bal :d",
        ExpressionAttributeValues={":d": {"N": "1"}},
    )
    # WHEN reconciled
    differences = ledger.reconcile("acme")
    # THEN the difference is reported with both values
    assert [d.view() for d in differences] == [
        {"kind": "balance", "currency": "USD", "key": "cash", "stored": 501, "computed": 500}
    ]


def test_auto_top_up_raises_one_request_per_crossing(ledger: Any) -> None:
    # GIVEN a rule: under 1000 available, top up 5000
    from neruba.dal.top_ups import TopUpRepository
    from neruba.domain.credits import AutoTopUpRule

    rules = TopUpRepository(ledger.table_name)
    client("dynamodb").transact_write_items(
        TransactItems=[rules.rule_item(AutoTopUpRule("acme", "USD", 1000, 5000))]
    )
    # WHEN credit is checked at 1500, then 800 three times (retries), then back to 6000, then 200
    assert check_auto_top_up(ledger, "acme", "USD", available=1500, at=T0) is None
    first = check_auto_top_up(ledger, "acme", "USD", available=800, at=T0)
    repeats = [check_auto_top_up(ledger, "acme", "USD", available=800, at=T0) for _ in range(2)]
    assert check_auto_top_up(ledger, "acme", "USD", available=6000, at=T0) is None
    second = check_auto_top_up(ledger, "acme", "USD", available=200, at=T0)
    # THEN each crossing has one stored request; retries within a crossing see the same request
    assert first is not None and first.amount_minor == 5000
    assert all(r is not None and r.request_id == first.request_id for r in repeats)
    assert second is not None and second.request_id != first.request_id
    assert [r.request_id for r in rules.requests("acme")] == [first.request_id, second.request_id]


def test_payment_retry_through_record_payment(ledger: Any) -> None:
    # GIVEN / WHEN a payment recorded three times with the same key
    for _ in range(3):
        record_payment(
            ledger,
            customer_id="acme",
            currency="USD",
            amount_minor=250,
            payment_id="pay_9",
            idempotency_key="payment:pay_9",
            source="stripe",
            actor="stripe:evt_1",
            at=T0,
        )
    # THEN one posting
    assert _count_postings(ledger) == 1


def test_the_expiry_function_expires_every_due_grant_across_pages(ledger: Any) -> None:
    # GIVEN five grants that expired a minute ago and one that has not
    from datetime import UTC, datetime

    from functions.credit_expiry.app import lambda_handler
    from tests.support.api import fixture
    from tests.support.lambda_context import FakeContext

    now = datetime.now(UTC)
    for n in range(5):
        create_grant(
            ledger,
            customer_id="acme",
            kind="promotional",
            amount_minor=100 + n,
            currency="USD",
            idempotency_key=f"g{n}",
            actor="test",
            at=now - timedelta(days=1),
            expires_at=now - timedelta(minutes=1),
        )
    live, _ = create_grant(
        ledger,
        customer_id="acme",
        kind="promotional",
        amount_minor=7,
        currency="USD",
        idempotency_key="live",
        actor="test",
        at=now,
        expires_at=now + timedelta(days=1),
    )
    # WHEN the job pages two at a time, and then the scheduled handler runs
    report = expire_due(ledger, limit=2)
    handler_report = lambda_handler(fixture("credit_expiry.json"), FakeContext())
    # THEN all five expired in the first run, nothing in the second, the live grant is untouched
    assert len(report["expired"]) == 5 and report["posted_minor"] == 510
    assert handler_report["expired"] == []
    assert ledger.balances("acme")["USD"]["prepaid_credit#" + live.grant_id] == -7
    assert ledger.reconcile("acme") == []


@pytest.mark.parametrize("guard_first", [True, False], ids=["guard first", "guard after the grants"])
def test_a_retry_is_recognised_by_the_guard_action_wherever_it_stands(ledger: Any, guard_first: bool) -> None:
    # GIVEN a promotional grant and an invoice posting consuming it, in one transaction whose actions
    # stand in either order (the grant's update also fails on a retry, its item holding no posting)
    create_grant(
        ledger,
        customer_id="acme",
        kind="promotional",
        amount_minor=300,
        currency="USD",
        idempotency_key="g1",
        actor="test",
        at=T0,
    )
    at = T0 + timedelta(days=1)
    apps = allocate(ledger.grants("acme", "USD", at), [Line("l1", None, 1000)], at)
    posting = invoice_posting("acme", "in_1", "USD", 1000, apps, at)
    grants = [
        {"Update": {**item["Update"], "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}
        for item in ledger.grant_consumption_items(apps, at=at)
    ]
    unit = Transaction()
    if not guard_first:
        unit.extend(grants, name="grants")
    unit.extend(ledger.posting_items(posting), name=POSTING_GUARD)
    if guard_first:
        unit.extend(grants, name="grants")
    unit.commit()
    # WHEN the same transaction is sent again
    with pytest.raises(Cancelled) as raised:
        unit.commit()
    # THEN the stored posting is read from the guard's reason, not from whichever action stands first
    assert raised.value.failed("grants")
    assert ledger.retried_posting(raised.value) == posting
