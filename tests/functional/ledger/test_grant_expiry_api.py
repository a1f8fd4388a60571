"""Credit that has expired, through the real ledger handler: a grant cannot be created already expired,
and a balance read never counts credit past its ``expires_at``, whether or not the expiry job has run."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.functional.ledger.test_ledger_api import GRANT, Api, _balance
from tests.support.api import api_event, call


@pytest.fixture
def api(customers: Any) -> Api:
    """The ledger handler: (method, path, body, key, scopes) -> (status, body)."""
    from functions.ledger_api.app import lambda_handler

    def _call(
        method: str, path: str, body: Any = None, *, key: str | None = None, scopes: str = "admin read"
    ) -> Any:
        headers = {"Idempotency-Key": key} if key else None
        status, parsed, _ = call(
            lambda_handler, api_event(method, path, body=body, headers=headers, scopes=scopes)
        )
        return status, parsed

    return _call


def test_a_grant_that_has_already_expired_is_refused(api: Api) -> None:
    # WHEN an operator grants credit whose expiry has passed (with or without an explicit start)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    earlier = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    for extra in ({"expires_at": past}, {"effective_at": earlier, "expires_at": past}):
        status, body = api("POST", "/admin/customers/acme/credit-grants", {**GRANT, **extra}, key=str(extra))
        # THEN it is refused with a clear 400 naming the field, and nothing is granted
        assert (status, body["error"]["code"], body["error"]["param"]) == (400, "grant_expired", "expires_at")
    assert api("GET", "/v1/customers/acme/credit-grants", scopes="read")[1]["data"] == []
    assert _balance(api)["credit_available_minor"] == 0


def test_the_balance_stops_counting_credit_at_its_expiry_before_the_expiry_job(api: Api) -> None:
    # GIVEN 50.00 expiring in four seconds and 20.00 without expiry
    soon = datetime.now(UTC) + timedelta(seconds=4)
    status, expiring = api(
        "POST", "/admin/customers/acme/credit-grants", {**GRANT, "expires_at": soon.isoformat()}, key="a"
    )
    assert status == 201
    status, lasting = api(
        "POST", "/admin/customers/acme/credit-grants", {**GRANT, "amount_minor": 2000}, key="b"
    )
    assert status == 201
    before = _balance(api)["credit_available_minor"]
    if datetime.now(UTC) < soon:  # a loaded machine may already be past the expiry: then it is 2000
        assert before == 7000

    # WHEN the expiry passes and the balance is read (the expiry job has not run)
    while datetime.now(UTC) <= soon:
        time.sleep(0.2)
    balance = _balance(api)

    # THEN only the lasting 20.00 is available; the expired 50.00 is shown as expired, not as credit
    assert balance["credit_available_minor"] == 2000
    assert balance["credit_available_by_grant"] == {lasting["id"]: 2000}
    assert expiring["id"] not in balance["credit_available_by_grant"]
    assert balance["credit_expired_unposted_minor"] == 5000
