"""PUT/GET /v1/customers/{id}/limits and the entitlement checks over HTTP-shaped events: validation codes,
Idempotency-Key, audit, and at most two DynamoDB reads per entitlement check."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.api import api_event, call

LIMITS = "/v1/customers/acme/limits"


def _put(body: dict[str, Any], key: str | None = None, customer: str = "acme") -> tuple[int, Any]:
    from functions.admin_api.app import lambda_handler

    headers = {"Idempotency-Key": key} if key else None
    event = api_event(
        "PUT",
        f"/v1/customers/{customer}/limits",
        body=body,
        scopes="admin",
        path_parameters={"customer_id": customer},
        headers=headers,
    )
    status, answer, _ = call(lambda_handler, event)
    return status, answer


def _get(path: str, **params: str) -> tuple[int, Any]:
    from functions.read_api.app import lambda_handler

    status, answer, _ = call(lambda_handler, api_event("GET", path, scopes="read", path_parameters=params))
    return status, answer


def _audit() -> list[dict[str, Any]]:
    from functions.ledger_api.app import lambda_handler

    event = api_event("GET", "/admin/audit", scopes="admin", query={"customer_id": "acme"})
    status, answer, _ = call(lambda_handler, event)
    assert status == 200, answer
    return [r for r in answer["data"] if r["action"] == "customer.limits"]


CAPS = {"meters": [{"meter_code": "api_calls", "hard_cap": "100", "soft_cap": "80", "alerts": ["50"]}]}


def test_limits_are_set_read_back_and_audited(catalog: Any) -> None:
    status, body = _put({**CAPS, "reason": "plan limit"})
    assert status == 200, body
    assert body["meters"] == [
        {
            "meter_code": "api_calls",
            "hard_cap": "100",
            "soft_cap": "80",
            "alerts": ["50"],
            "usage": "0",
            "remaining": "100",
            "alerts_fired": [],
            "hard_cap_amount_minor": None,
            "amount_minor": None,
        }
    ]
    assert (body["spend_alerts_minor"], body["spend_minor"], body["balance_alerts_minor"]) == ([], None, [])
    status, read = _get(LIMITS, customer_id="acme")
    assert status == 200 and read == body
    (record,) = _audit()
    assert record["after"]["meters"]["api_calls"]["hard"] == "100" and record["before"] is None


def test_the_same_idempotency_key_answers_once_and_refuses_another_body(catalog: Any) -> None:
    first = _put(CAPS, key="k1")
    again = _put(CAPS, key="k1")
    assert first == again and first[0] == 200
    assert len(_audit()) == 1
    status, body = _put({"meters": []}, key="k1")
    assert status == 409 and body["error"]["code"] == "idempotency_conflict"


@pytest.mark.parametrize(
    ("meters", "code", "param"),
    [
        ([{"meter_code": "nope", "hard_cap": "1"}], "meter_not_found", "meters.0.meter_code"),
        (
            [{"meter_code": "storage_gb", "hard_cap": "1"}],
            "limit_aggregation_unsupported",
            "meters.0.meter_code",
        ),
        ([{"meter_code": "api_calls"}], "limit_empty", "meters.0"),
        (
            [{"meter_code": "api_calls", "hard_cap": "1", "soft_cap": "2"}],
            "soft_cap_above_hard_cap",
            "meters.0",
        ),
        ([{"meter_code": "api_calls", "alerts": ["1", "1.0"]}], "duplicate_alert", "meters.0.alerts"),
        (
            [{"meter_code": "api_calls", "alerts": ["1"]}, {"meter_code": "api_calls", "hard_cap": "2"}],
            "duplicate_meter",
            "meters.1.meter_code",
        ),
    ],
)
def test_broken_rules_answer_400_and_write_nothing(catalog: Any, meters: Any, code: str, param: str) -> None:
    status, body = _put({"meters": meters})
    assert status == 400, body
    assert (body["error"]["code"], body["error"]["param"]) == (code, param)
    assert _get(LIMITS, customer_id="acme")[1]["meters"] == []
    assert _audit() == []


def test_schema_errors_are_422_and_unknown_customers_404(catalog: Any) -> None:
    status, body = _put({"meters": [{"meter_code": "api_calls", "hard_cap": "-1"}]})
    assert status == 422 and body["error"]["code"] == "validation_error"
    status, body = _put(CAPS, customer="ghost")
    assert status == 404 and body["error"]["code"] == "customer_not_found"
    status, body = _get("/v1/customers/ghost/entitlements", customer_id="ghost")
    assert status == 404 and body["error"]["code"] == "customer_not_found"


FEATURES = {
    "features": [
        {"feature": "sso", "kind": "boolean", "enabled": True},
        {"feature": "seats", "kind": "static", "value": "25"},
        {"feature": "calls", "kind": "metered", "meter_code": "api_calls", "limit": "2"},
        {"feature": "tokens", "kind": "metered", "meter_code": "tokens", "limit": "1000"},
    ]
}


@pytest.fixture
def reads() -> Iterator[list[str]]:
    """DynamoDB read requests made while the test runs (a botocore event hook on the shared client)."""
    from neruba.dal.clients import client

    seen: list[str] = []

    def count(model: Any, **_: Any) -> None:
        if model.name in ("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"):
            seen.append(model.name)

    events = client("dynamodb").meta.events
    events.register("before-call.dynamodb", count)
    yield seen
    events.unregister("before-call.dynamodb", count)


def test_entitlements_answer_access_usage_limit_remaining_and_reset_in_two_reads(
    catalog: Any, reads: list[str]
) -> None:
    from functions.ingest_api.app import lambda_handler as ingest
    from functions.ingest_worker.app import lambda_handler as worker
    from tests.support.aws import queue_url
    from tests.support.queues import drain

    assert _put(FEATURES)[0] == 200
    calls = [{"transaction_id": f"t{i}", "customer_id": "acme", "code": "api_calls"} for i in range(2)]
    assert call(ingest, api_event("POST", "/v1/events", body={"events": calls}))[0] == 202
    drain(worker, queue_url("IngestQueue"))
    reads.clear()
    status, one = _get("/v1/customers/acme/entitlements/calls", customer_id="acme", feature="calls")
    assert status == 200, one
    assert 1 <= len(reads) <= 2, reads
    assert (one["access"], one["usage"], one["limit"], one["remaining"]) == (False, "2", "2", "0")
    assert one["resets_at"] is not None
    reads.clear()
    status, every = _get("/v1/customers/acme/entitlements", customer_id="acme")
    assert status == 200 and 1 <= len(reads) <= 2, reads
    rows = {row["feature"]: row for row in every["data"]}
    assert rows["sso"]["access"] is True and rows["seats"]["value"] == "25"
    assert (rows["tokens"]["access"], rows["tokens"]["remaining"]) == (True, "1000")
    status, body = _get("/v1/customers/acme/entitlements/nope", customer_id="acme", feature="nope")
    assert status == 404 and body["error"]["code"] == "feature_not_found"


@pytest.mark.parametrize("value", ["a\u0007b", "a\nb", "a\u2028b", "a\x7fb", "a\u0085b"])
def test_a_static_value_with_a_control_character_or_line_break_is_refused(catalog: Any, value: str) -> None:
    status, body = _put({"features": [{"feature": "f", "kind": "static", "value": value}]})
    assert status == 422, body
    assert body["error"]["code"] == "validation_error"
    assert [d["param"] for d in body["error"]["details"]] == ["features.0.value"]
    assert _audit() == []


@pytest.mark.parametrize("text", [" 5 ", "1_000", "\u0661\u0662", "1e5", "1E-6", "+5", ".5", "5."])
@pytest.mark.parametrize("field", ["hard_cap", "soft_cap", "alerts"])
def test_a_cap_is_plain_decimal_text(catalog: Any, field: str, text: str) -> None:
    limit: dict[str, Any] = {"meter_code": "api_calls", field: [text] if field == "alerts" else text}
    status, body = _put({"meters": [limit]})
    assert status == 422, body
    assert body["error"]["code"] == "validation_error"
    assert [d["param"].split(".")[2] for d in body["error"]["details"]] == [field]
    assert _get(LIMITS, customer_id="acme")[1]["meters"] == [] and _audit() == []


@pytest.mark.parametrize(
    ("interval", "anchor"),
    [("day", "9999-12-31T23:59:59Z"), ("year", "9999-06-01T00:00:00Z"), ("month", "9999-12-15T00:00:00Z")],
)
def test_an_anchor_whose_period_runs_past_the_calendar_is_refused(
    catalog: Any, interval: str, anchor: str
) -> None:
    caps = {"meters": [{"meter_code": "api_calls", "hard_cap": "5"}]}
    status, body = _put({"interval": interval, "period_anchor": anchor, **caps})
    assert status == 422, body
    assert body["error"]["code"] == "validation_error"
    assert [d["param"] for d in body["error"]["details"]] == ["period_anchor"]
    assert _audit() == []


def test_the_limits_read_their_counters_in_one_batch(catalog: Any, reads: list[str]) -> None:
    # GIVEN limits on two meters and a spend alert: three counters
    body = {
        "meters": [{"meter_code": "api_calls", "hard_cap": "10"}, {"meter_code": "tokens", "alerts": ["5"]}],
        "spend_alerts_minor": [100],
    }
    assert _put(body)[0] == 200
    reads.clear()
    # WHEN they are read
    status, answer = _get(LIMITS, customer_id="acme")
    # THEN the customer's item, then every counter in one batch
    assert status == 200, answer
    assert reads == ["GetItem", "BatchGetItem"]
    assert [row["usage"] for row in answer["meters"]] == ["0", "0"] and answer["spend_minor"] == 0
