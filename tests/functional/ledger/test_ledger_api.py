"""The ledger routes through the real handler: reads, operator actions, retries, audit, access."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.functional.ledger.helpers import paid
from tests.support.api import api_event, call

Api = Callable[..., tuple[int, Any]]


@pytest.fixture
def api(customers: Any) -> Api:
    from functions.ledger_api.app import lambda_handler

    def _call(
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
        scopes: str = "admin read",
        query: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        headers = {"Idempotency-Key": key} if key else None
        status, parsed, _ = call(
            lambda_handler, api_event(method, path, body=body, headers=headers, scopes=scopes, query=query)
        )
        return status, parsed

    return _call


def _postings(api: Api, customer: str = "acme") -> list[dict[str, Any]]:
    status, page = api("GET", f"/v1/customers/{customer}/ledger", scopes="read", query={"limit": "100"})
    assert status == 200
    return page["data"]


def _balance(api: Api, customer: str = "acme") -> dict[str, Any]:
    status, balance = api("GET", f"/v1/customers/{customer}/balance", scopes="read")
    assert status == 200
    return balance


def _audit(api: Api, customer: str = "acme") -> list[dict[str, Any]]:
    status, page = api("GET", "/admin/audit", query={"customer_id": customer})
    assert status == 200
    return page["data"]


GRANT = {"kind": "promotional", "amount_minor": 5000, "reason": "launch promo", "ticket": "SUP-1"}


def test_grant_credits_shows_in_balance_ledger_grants_and_audit(api: Api) -> None:
    # WHEN an operator grants 50.00 of promotional credit
    status, grant = api("POST", "/admin/customers/acme/credit-grants", GRANT, key="k1")
    # THEN the grant, the balance, the ledger and the audit trail all show it
    assert status == 201 and grant["remaining_minor"] == 5000 and grant["currency"] == "USD"
    balance = _balance(api)
    assert balance["credit_available_minor"] == 5000
    assert balance["credit_available_by_grant"] == {grant["id"]: 5000}
    assert balance["amount_due_minor"] == 0
    [posting] = _postings(api)
    assert (posting["source"], posting["reason"], posting["actor"]) == (
        "operator",
        "credit_grant_promotional",
        "key:0123456789ab",
    )
    assert api("GET", "/v1/customers/acme/credit-grants", scopes="read")[1]["data"][0]["id"] == grant["id"]
    [record] = _audit(api)
    assert record["action"] == "credit_grant.create" and record["target"] == grant["id"]
    assert (record["reason"], record["ticket"]) == ("launch promo", "SUP-1")
    assert record["before"]["balance"]["credit_available_minor"] == 0
    assert record["after"]["balance"]["credit_available_minor"] == 5000


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/admin/customers/acme/credit-grants", GRANT),
        (
            "/admin/customers/acme/balance-adjustments",
            {"amount_minor": 300, "reason_code": "goodwill", "reason": "outage"},
        ),
        ("/admin/customers/acme/refunds", {"amount_minor": 200, "payment_id": "ch_in_1", "reason": "asked"}),
        (
            "/admin/customers/acme/disputes",
            {"amount_minor": 200, "invoice_id": "in_1", "reason": "chargeback"},
        ),
    ],
)
def test_each_action_retried_with_the_same_key_posts_once(api: Api, path: str, body: dict[str, Any]) -> None:
    # GIVEN invoice in_1 paid by ch_in_1 (what refunds and disputes take back from)
    paid("in_1", 1000)
    before = len(_postings(api))
    # WHEN the same request is sent three times with one Idempotency-Key
    answers = [api("POST", path, body, key="same-key") for _ in range(3)]
    # THEN the same answer each time, one posting and one audit record
    assert all(a == answers[0] for a in answers), answers
    assert answers[0][0] == 201
    assert len(_postings(api)) == before + 1
    assert len(_audit(api)) == 1
    # AND the same key with another body is a conflict that writes nothing
    other = {**body, "reason": "something else"}
    status, error = api("POST", path, other, key="same-key")
    assert (status, error["error"]["code"]) == (409, "idempotency_conflict")
    assert len(_postings(api)) == before + 1


def test_void_remainder_is_audited_and_retry_safe(api: Api) -> None:
    # GIVEN a purchased grant
    _, grant = api(
        "POST",
        "/admin/customers/acme/credit-grants",
        {**GRANT, "kind": "purchased", "amount_minor": 900},
        key="g",
    )
    # WHEN it is voided twice with the same key, then once with a new key
    first = api("POST", f"/admin/credit-grants/{grant['id']}/void", {"reason": "sold by mistake"}, key="v")
    again = api("POST", f"/admin/credit-grants/{grant['id']}/void", {"reason": "sold by mistake"}, key="v")
    other = api("POST", f"/admin/credit-grants/{grant['id']}/void", {"reason": "again"}, key="v2")
    # THEN one void posting, the grant is voided with 0 left, a new key is refused as not active
    assert first == again and first[0] == 200
    assert first[1]["status"] == "voided" and first[1]["remaining_minor"] == 0
    assert (other[0], other[1]["error"]["code"]) == (409, "credit_grant_not_active")
    assert [p["reason"] for p in _postings(api)] == ["credit_grant_voided", "credit_grant_purchased"]
    assert _balance(api)["credit_available_minor"] == 0
    void_record = _audit(api)[0]
    assert void_record["before"]["grant"]["remaining_minor"] == 900
    assert void_record["after"]["grant"] == {"id": grant["id"], "status": "voided", "remaining_minor": 0}


def test_dispute_lifecycle_won_and_lost(api: Api) -> None:
    # GIVEN two paid invoices of 1000 (payments ch_in_1, ch_in_2) and disputes of 400 and 100
    paid("in_1", 1000)
    paid("in_2", 1000)
    _, won = api(
        "POST",
        "/admin/customers/acme/disputes",
        {"amount_minor": 400, "payment_id": "ch_in_1", "reason": "cb"},
        key="d1",
    )
    _, lost = api(
        "POST",
        "/admin/customers/acme/disputes",
        {"amount_minor": 100, "payment_id": "ch_in_2", "reason": "cb"},
        key="d2",
    )
    # WHEN one is won (twice: a retry) and the other lost, then the won one is closed as lost
    assert (
        api("POST", f"/admin/disputes/{won['id']}/close", {"outcome": "won", "reason": "evidence"})[0] == 200
    )
    assert (
        api("POST", f"/admin/disputes/{won['id']}/close", {"outcome": "won", "reason": "evidence"})[0] == 200
    )
    status, closed = api("POST", f"/admin/disputes/{lost['id']}/close", {"outcome": "lost", "reason": "no"})
    conflict = api("POST", f"/admin/disputes/{won['id']}/close", {"outcome": "lost", "reason": "oops"})
    # THEN the won funds came back, the lost ones are written off, and a closed dispute stays closed
    assert status == 200 and closed["status"] == "lost"
    assert (conflict[0], conflict[1]["error"]["code"]) == (409, "dispute_closed")
    accounts = _balance(api)["accounts"]
    assert accounts["cash"] == 1900 and accounts["dispute_losses"] == 100 and "disputes" not in accounts
    assert len(_postings(api)) == 2 + 4


def test_adjustment_lowers_amount_due_and_reports_balance(api: Api) -> None:
    # WHEN a correction raises the amount due and goodwill lowers it
    api(
        "POST",
        "/admin/customers/acme/balance-adjustments",
        {"amount_minor": -1000, "reason_code": "correction", "reason": "underbilled"},
        key="a1",
    )
    status, body = api(
        "POST",
        "/admin/customers/acme/balance-adjustments",
        {"amount_minor": 250, "reason_code": "goodwill", "reason": "outage"},
        key="a2",
    )
    # THEN the amount due is 750 and every posting balances
    assert status == 201 and body["balance"]["amount_due_minor"] == 750
    for posting in _postings(api):
        entries = posting["entries"]
        assert sum(e.get("debit_minor", 0) for e in entries) == sum(e.get("credit_minor", 0) for e in entries)


def test_auto_top_up_rule_is_audited(api: Api) -> None:
    # WHEN the rule is set twice
    body = {"threshold_minor": 1000, "amount_minor": 5000, "reason": "customer asked"}
    assert api("PUT", "/admin/customers/acme/auto-top-up", body)[0] == 200
    status, rule = api("PUT", "/admin/customers/acme/auto-top-up", {**body, "amount_minor": 7000})
    # THEN the latest rule is stored and both changes are audited with before/after
    assert status == 200 and rule["amount_minor"] == 7000
    latest = _audit(api)[0]
    assert (
        latest["before"]["rule"]["amount_minor"] == 5000 and latest["after"]["rule"]["amount_minor"] == 7000
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "key", "status", "code"),
    [
        ("POST", "/admin/customers/nobody/credit-grants", GRANT, "k", 404, "customer_not_found"),
        (
            "POST",
            "/admin/customers/acme/credit-grants",
            {**GRANT, "currency": "EUR"},
            "k",
            400,
            "currency_mismatch",
        ),
        (
            "POST",
            "/admin/customers/acme/credit-grants",
            {k: v for k, v in GRANT.items() if k != "reason"},
            "k",
            422,
            "validation_error",
        ),
        ("POST", "/admin/customers/acme/credit-grants", GRANT, None, 400, "idempotency_key_required"),
        (
            "POST",
            "/admin/customers/acme/credit-grants",
            {**GRANT, "amount_minor": 10.5},
            "k",
            422,
            "validation_error",
        ),
        (
            "POST",
            "/admin/credit-grants/cg_000000000000000000000000/void",
            {"reason": "x"},
            "k",
            404,
            "credit_grant_not_found",
        ),
        (
            "POST",
            "/admin/disputes/dp_missing/close",
            {"outcome": "won", "reason": "x"},
            None,
            404,
            "dispute_not_found",
        ),
        ("GET", "/v1/customers/nobody/balance", None, None, 404, "customer_not_found"),
    ],
)
def test_bad_requests_get_a_code_and_write_nothing(
    api: Api, method: str, path: str, body: Any, key: str | None, status: int, code: str
) -> None:
    # WHEN the bad request is sent
    got, error = api(method, path, body, key=key)
    # THEN a clear 4xx with a code, and no posting or audit record
    assert (got, error["error"]["code"]) == (status, code)
    assert _postings(api) == [] and _audit(api) == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/admin/customers/acme/credit-grants", GRANT),
        (
            "POST",
            "/admin/customers/acme/balance-adjustments",
            {"amount_minor": 1, "reason_code": "goodwill", "reason": "x"},
        ),
        ("POST", "/admin/customers/acme/refunds", {"amount_minor": 1, "payment_id": "p", "reason": "x"}),
        ("POST", "/admin/customers/acme/disputes", {"amount_minor": 1, "payment_id": "p", "reason": "x"}),
        ("POST", "/admin/disputes/dp_1/close", {"outcome": "won", "reason": "x"}),
        ("POST", "/admin/credit-grants/cg_000000000000000000000000/void", {"reason": "x"}),
        (
            "PUT",
            "/admin/customers/acme/auto-top-up",
            {"threshold_minor": 1, "amount_minor": 2, "reason": "x"},
        ),
        ("GET", "/admin/audit", None),
    ],
)
def test_a_read_key_cannot_call_admin_routes(api: Api, method: str, path: str, body: Any) -> None:
    # WHEN a read-only key calls an admin route with a valid request
    status, error = api(method, path, body, key="k", scopes="read", query={"customer_id": "acme"})
    # THEN 403, and nothing was written
    assert (status, error["error"]["code"]) == (403, "insufficient_scope")
    assert _postings(api) == [] and _audit(api) == []


def test_an_admin_only_key_cannot_read_balances(api: Api) -> None:
    status, _ = api("GET", "/v1/customers/acme/balance", scopes="admin")
    assert status == 403


def test_credit_grants_are_listed_page_by_page_oldest_first(api: Api) -> None:
    # GIVEN three grants, effective one after the other
    made = []
    for n, effective in enumerate(("2026-01-03T00:00:00Z", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")):
        body = {**GRANT, "effective_at": effective}
        status, grant = api("POST", "/admin/customers/acme/credit-grants", body, key=f"g-{n}")
        assert status == 201, grant
        made.append((grant["effective_at"], grant["id"]))
    # WHEN they are read two at a time
    pages, cursor = [], None
    while True:
        query = {"limit": "2", **({"starting_after": cursor} if cursor else {})}
        status, page = api("GET", "/v1/customers/acme/credit-grants", scopes="read", query=query)
        assert status == 200 and page["has_more"] is (page["next_cursor"] is not None), page
        pages.append([grant["id"] for grant in page["data"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # THEN two pages give each grant once, oldest effective first
    assert [len(page) for page in pages] == [2, 1]
    assert [i for page in pages for i in page] == [grant_id for _, grant_id in sorted(made)]
    # AND the cursor is refused by another list of the customer
    _, first = api("GET", "/v1/customers/acme/credit-grants", scopes="read", query={"limit": "2"})
    query = {"starting_after": first["next_cursor"]}
    status, answer = api("GET", "/v1/customers/acme/ledger", scopes="read", query=query)
    assert (status, answer["error"]["code"]) == (400, "invalid_cursor"), answer
