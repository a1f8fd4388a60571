"""Grants raising a metered entitlement's limit, over HTTP-shaped events: the raised limit and remaining
in GET entitlements (still at most two reads), the Idempotency-Key (a duplicate answers the first grant,
another body is 409), the audit record, expiry, and the refusals."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.api import api_event, call

GRANTS = "/v1/customers/acme/entitlements/calls/grants"
FEATURES = {
    "features": [
        {"feature": "sso", "kind": "boolean"},
        {"feature": "calls", "kind": "metered", "meter_code": "api_calls", "limit": "2"},
    ]
}


def _admin(method: str, path: str, body: Any, key: str | None = None, **params: str) -> tuple[int, Any]:
    from functions.admin_api.app import lambda_handler

    headers = {"Idempotency-Key": key} if key else None
    event = api_event(method, path, body=body, path_parameters=params, headers=headers)
    status, answer, _ = call(lambda_handler, event)
    return status, answer


def _grant(body: dict[str, Any], key: str | None, feature: str = "calls") -> tuple[int, Any]:
    path = f"/v1/customers/acme/entitlements/{feature}/grants"
    return _admin("POST", path, body, key, customer_id="acme", feature=feature)


def _entitlement(feature: str = "calls") -> dict[str, Any]:
    from functions.read_api.app import lambda_handler

    path = f"/v1/customers/acme/entitlements/{feature}"
    event = api_event("GET", path, scopes="read", path_parameters={"customer_id": "acme", "feature": feature})
    status, body, _ = call(lambda_handler, event)
    assert status == 200, body
    return dict(body)


def _audit() -> list[dict[str, Any]]:
    from functions.ledger_api.app import lambda_handler

    event = api_event("GET", "/admin/audit", scopes="admin", query={"customer_id": "acme"})
    status, answer, _ = call(lambda_handler, event)
    assert status == 200, answer
    return [r for r in answer["data"] if r["action"] == "customer.entitlement_grant"]


@pytest.fixture
def calls(catalog: Any) -> None:
    """acme may make 2 calls a period and has made 2."""
    from functions.ingest_api.app import lambda_handler as ingest
    from functions.ingest_worker.app import lambda_handler as worker
    from tests.support.aws import queue_url
    from tests.support.queues import drain

    assert _admin("PUT", "/v1/customers/acme/limits", FEATURES, customer_id="acme")[0] == 200
    events = [{"transaction_id": f"t{i}", "customer_id": "acme", "code": "api_calls"} for i in range(2)]
    assert call(ingest, api_event("POST", "/v1/events", body={"events": events}))[0] == 202
    drain(worker, queue_url("IngestQueue"))


@pytest.fixture
def reads() -> Iterator[list[str]]:
    from neruba.dal.clients import client

    seen: list[str] = []

    def count(model: Any, **_: Any) -> None:
        if model.name in ("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"):
            seen.append(model.name)

    events = client("dynamodb").meta.events
    events.register("before-call.dynamodb", count)
    yield seen
    events.unregister("before-call.dynamodb", count)


def test_a_grant_raises_the_limit_and_remaining_and_is_audited(calls: None, reads: list[str]) -> None:
    # GIVEN acme used its 2 calls (no access)
    before = _entitlement()
    assert (before["access"], before["limit"], before["remaining"], before["granted"]) == (
        False,
        "2",
        "0",
        "0",
    )

    # WHEN an operator grants 5 more calls for the period
    status, grant = _grant({"amount": "5", "reason": "launch week", "ticket": "SUP-1"}, "g-1")

    # THEN the grant answers the raised entitlement; GET answers it too, in at most two reads
    assert status == 201, grant
    assert (grant["amount"], grant["feature"], grant["entitlement"]["limit"]) == ("5", "calls", "7")
    reads.clear()
    after = _entitlement()
    assert 1 <= len(reads) <= 2, reads
    assert (after["access"], after["limit"], after["granted"], after["remaining"]) == (True, "7", "5", "5")
    assert after["resets_at"] == grant["expires_at"]  # by default the grant ends with the period

    # AND one audit record names the grant, its reason and its key
    [record] = _audit()
    assert (record["target"], record["reason"], record["ticket"]) == (grant["id"], "launch week", "SUP-1")
    assert record["after"]["amount"] == "5"


def test_the_same_key_answers_the_first_grant_and_another_body_is_a_conflict(calls: None) -> None:
    body = {"amount": "5", "reason": "launch week"}
    first = _grant(body, "g-1")
    again = _grant(body, "g-1")
    assert first[0] == again[0] == 201
    assert again[1] == first[1]
    status, error = _grant({**body, "amount": "50"}, "g-1")
    assert (status, error["error"]["code"]) == (409, "idempotency_conflict")
    assert _entitlement()["limit"] == "7"  # one grant counted
    assert len(_audit()) == 1

    # a second grant under another key adds up
    assert _grant({"amount": "1.5", "reason": "more"}, "g-2")[0] == 201
    assert (_entitlement()["limit"], _entitlement()["granted"]) == ("8.5", "6.5")


def test_a_grant_counts_until_it_expires(calls: None) -> None:
    from neruba.logic.limits.entitlements import entitlement

    expires = datetime.now(UTC) + timedelta(hours=1)
    status, grant = _grant({"amount": "3", "reason": "an hour", "expires_at": expires.isoformat()}, "g-1")
    assert status == 201, grant
    assert entitlement("acme", "calls", expires - timedelta(seconds=1))["limit"] == "5"
    assert entitlement("acme", "calls", expires)["limit"] == "2"


@pytest.mark.parametrize(
    ("feature", "body", "key", "status", "code"),
    [
        ("calls", {"amount": "5", "reason": "x"}, None, 400, "idempotency_key_required"),
        ("sso", {"amount": "5", "reason": "x"}, "k", 400, "feature_not_metered"),
        ("nope", {"amount": "5", "reason": "x"}, "k", 404, "feature_not_found"),
        (
            "calls",
            {"amount": "5", "reason": "x", "expires_at": "2020-01-01T00:00:00Z"},
            "k",
            400,
            "invalid_expiry",
        ),
        ("calls", {"amount": "0", "reason": "x"}, "k", 422, "validation_error"),
        ("calls", {"amount": "1e3", "reason": "x"}, "k", 422, "validation_error"),
        ("calls", {"amount": "5"}, "k", 422, "validation_error"),
        ("calls", {"amount": "5", "reason": "x", "colour": "red"}, "k", 422, "validation_error"),
    ],
)
def test_refused_grants_write_nothing(
    calls: None, feature: str, body: dict[str, Any], key: str | None, status: int, code: str
) -> None:
    got, error = _grant(body, key, feature)
    assert (got, error["error"]["code"]) == (status, code), error
    assert _entitlement()["limit"] == "2" and _audit() == []


def test_an_unknown_customer_is_404(catalog: Any) -> None:
    path = "/v1/customers/nobody/entitlements/calls/grants"
    status, error = _admin(
        "POST", path, {"amount": "1", "reason": "x"}, "k", customer_id="nobody", feature="calls"
    )
    assert (status, error["error"]["code"]) == (404, "customer_not_found")
