"""Plan and plan-version creation honour Idempotency-Key like the other admin writes."""

from __future__ import annotations

from typing import Any

from tests.functional.catalog.conftest import Api
from tests.functional.catalog.test_catalog_api import PLAN, _seed

VERSION = {k: v for k, v in PLAN.items() if k != "code"} | {"name": "Pro v2"}


def _post(admin: Api, path: str, body: dict[str, Any], key: str) -> tuple[int, Any]:
    return admin("POST", path, body, headers={"Idempotency-Key": key}, params=_params(path))


def _params(path: str) -> dict[str, str] | None:
    return {"plan_code": path.split("/")[3]} if path.count("/") > 3 else None


def _versions(reader: Api) -> list[int]:
    status, plan = reader("/v1/plans/pro", params={"plan_code": "pro"})
    assert status == 200, plan
    return list(plan["versions"])


def test_a_plan_created_twice_with_one_key_answers_the_first_201(admin: Api, reader: Api) -> None:
    _seed(admin)
    # WHEN the client retries POST /v1/plans with the same key and body
    first = _post(admin, "/v1/plans", PLAN, "plan-1")
    again = _post(admin, "/v1/plans", PLAN, "plan-1")
    # THEN the retry gets the first answer, and one version exists
    assert first[0] == 201, first
    assert again == first
    assert _versions(reader) == [1]
    # AND the same key with another body is a conflict
    status, body = _post(admin, "/v1/plans", PLAN | {"name": "Other"}, "plan-1")
    assert (status, body["error"]["code"]) == (409, "idempotency_conflict")


def test_a_version_published_twice_with_one_key_is_published_once(admin: Api, reader: Api) -> None:
    _seed(admin)
    assert admin("POST", "/v1/plans", PLAN)[0] == 201
    # WHEN the client retries a publication with the same key and body
    first = _post(admin, "/v1/plans/pro/versions", VERSION, "v2")
    again = _post(admin, "/v1/plans/pro/versions", VERSION, "v2")
    # THEN one version 2 exists and the retry answers it
    assert first[0] == 201, first
    assert again == first
    assert _versions(reader) == [1, 2]
    status, body = _post(admin, "/v1/plans/pro/versions", VERSION | {"name": "v3"}, "v2")
    assert (status, body["error"]["code"]) == (409, "idempotency_conflict")
    assert _versions(reader) == [1, 2]


def test_a_refused_publication_stores_nothing_under_its_key(admin: Api, reader: Api) -> None:
    _seed(admin)
    assert admin("POST", "/v1/plans", PLAN)[0] == 201
    bad = VERSION | {"charges": [{"meter_code": "nope", "model": "per_unit", "unit_price": "1"}]}
    # WHEN a refused body is sent and then the same key is retried once
    assert _post(admin, "/v1/plans/pro/versions", bad, "v-bad")[0] in (400, 422)
    assert _post(admin, "/v1/plans/pro/versions", bad, "v-bad")[0] in (400, 422)
    # THEN nothing was published, and the key still works for a valid body
    assert _versions(reader) == [1]
    assert _post(admin, "/v1/plans/pro/versions", VERSION, "v-bad")[0] == 201
    assert _versions(reader) == [1, 2]


def test_customers_and_meters_created_twice_with_one_key_answer_the_first_201(admin: Api) -> None:
    customer = {"external_id": "acme", "name": "Acme", "currency": "usd"}
    meter = {"code": "api_calls", "name": "API calls", "aggregation": "count"}
    for path, body, other in (
        ("/v1/customers", customer, customer | {"name": "Other"}),
        ("/v1/meters", meter, meter | {"name": "Other"}),
    ):
        # WHEN the client retries a creation with the same key and body
        first = _post(admin, path, body, f"k{path}")
        again = _post(admin, path, body, f"k{path}")
        # THEN the retry gets the first 201, not 409 *_exists; another body is a conflict
        assert first[0] == 201, first
        assert again == first
        status, answer = _post(admin, path, other, f"k{path}")
        assert (status, answer["error"]["code"]) == (409, "idempotency_conflict"), answer
