"""Every operation of the OpenAPI document the running API serves, fuzzed by schemathesis over real HTTP.

For each operation schemathesis generates requests from the document (valid ones and, in the fuzz phase,
ones that break it) and sends them with an all-scopes key through the local gateway and authorizer. Each
answer must be: below 500; when an error, the one error shape; and a status code the document lists for
that operation, with a body that matches the schema the document gives for that status (the route's
model on a success: the reference is typed, so this checks real shapes). Half the cases fit the
document and half break it on purpose (schemathesis' negative mode).
``NERUBA_FUZZ_EXAMPLES`` sets the examples per operation (by default 4 in ``make test``, 25 in ``make deep``).

Schemathesis keeps to the document's media type, sends null only where the document allows it and never
forges a cursor, so explicit cases cover what a hostile client sends there: every body operation with
each media type spelling (JSON ones reach the route, others are 415), each body property set to null,
and every paginated operation with forged cursors (non-string key values, wrong shapes, a key named
twice): each answer obeys the same rules as the generated ones.
"""

from __future__ import annotations

import base64
import json
import os
import re
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.support.deep import size

pytestmark = [pytest.mark.integration, pytest.mark.scaled]
EXAMPLES = int(os.environ.get("NERUBA_FUZZ_EXAMPLES", size(4, 25)))
ERROR_FIELDS = {"type", "code", "message", "request_id"}
TIMEOUT = 120  # a sweep or billing run over the data fuzzing stored, on a busy machine


@pytest.fixture(scope="module")
def demo(local_stack: Any) -> Any:
    from neruba_tools.local.seed import seed_demo

    return seed_demo()


@pytest.fixture(scope="module")
def admin_key(demo: Any) -> str:
    return str(demo.api_key)


def _problems(operation: dict[str, Any], status: int, text: str) -> list[str]:
    """What is wrong with an answer: a 5xx, a status the operation does not document, or a body that does
    not match the schema the document gives for that status (the model of a success, the one error shape
    of an error), checked by ``tests.support.contract`` as in the functional API tests."""
    from tests.support.contract import operation_problems

    problems = []
    if status >= 500:
        problems.append(f"server error {status}")
    try:
        body = json.loads(text)
    except ValueError:
        return [*problems, f"the body is not JSON: {text[:200]!r}"]
    if status >= 400 and not (isinstance(body, dict) and set(body.get("error") or {}) >= ERROR_FIELDS):
        problems.append(f"error body is not the error shape: {text[:200]!r}")
    problems.extend(operation_problems("answer", operation, status, body))
    return problems


def test_every_operation_survives_generated_requests(local_stack: Any, admin_key: str) -> None:
    # GIVEN the OpenAPI document the running stack serves (generated from the route code)
    schema = schemathesis.openapi.from_url(f"{local_stack.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    failures: list[str] = []
    seen: dict[str, set[int]] = {}

    def fuzz(operation: Any) -> None:
        label = f"{operation.method.upper()} {operation.path}"
        seen[label] = set()

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(data=st.data())
        def run(data: st.DataObject) -> None:
            mode = data.draw(st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE]))
            case = data.draw(operation.as_strategy(mode))
            # WHEN the generated request is sent over HTTP with an all-scopes key
            response = case.call(
                base_url=local_stack.base_url,
                headers={"Authorization": f"Bearer {admin_key}"},
                timeout=TIMEOUT,
            )
            seen[label].add(response.status_code)
            # THEN the answer is one the document promises, in the one error shape when an error
            for problem in _problems(operation.definition.raw, response.status_code, response.text):
                failures.append(f"{label}: {problem} (request {case.path_parameters} {case.body!r:.200})")

        run()

    for operation in operations:
        fuzz(operation)

    assert not failures, "\n".join(sorted(set(failures))[:40])
    assert all(seen.values()), f"operations never called: {[k for k, v in seen.items() if not v]}"


# ---------------------------------------------------------------- explicit cases

MEDIA_TYPES: dict[str | None, bool] = {  # Content-Type -> whether it is JSON
    "application/json": True,
    "APPLICATION/JSON": True,
    "application/json; charset=UTF-8": True,
    "application/vnd.api+json": True,
    None: True,
    "text/plain": False,
    "application/xml": False,
    "application/x-www-form-urlencoded": False,
}


UNKNOWN_FIELD = b'{"fuzz_unknown": 1}'


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


FORGED_CURSORS = [
    "!!not-a-cursor!!",
    _b64(json.dumps({"pk": {"S": 1}, "sk": {"S": ["x"]}})),
    _b64(json.dumps({"kind": {"S": "customer"}, "list_key": {"S": 5}, "pk": {"S": None}, "sk": {"S": ""}})),
    _b64(json.dumps({"list_pk": {"S": "RUNS"}, "list_sk": {"N": "1"}, "pk": {"S": {}}, "sk": {"S": "#"}})),
    _b64('{"pk": {"S": "a"}, "sk": {"S": "b"}, "pk": {"S": "c"}}'),
    _b64("[" * 600 + "]" * 600),
]


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def _body_properties(document: dict[str, Any], operation: dict[str, Any]) -> list[str]:
    content = (operation.get("requestBody") or {}).get("content") or {}
    schema = _resolve(document, (content.get("application/json") or {}).get("schema") or {})
    return sorted(schema.get("properties") or {})


def _url(base: str, path: str, operation: dict[str, Any], customer_id: str) -> str:
    """The operation's path with its parameters filled (the demo customer where one is named)."""
    filled = re.sub(r"\{(\w+)\}", lambda m: customer_id if m.group(1) == "customer_id" else "x1", path)
    return base + filled


def _required_query(operation: dict[str, Any], customer_id: str) -> dict[str, str]:
    return {
        p["name"]: customer_id if p["name"] == "customer_id" else "x1"
        for p in operation.get("parameters") or []
        if p.get("in") == "query" and p.get("required")
    }


def test_media_types_nulls_and_forged_cursors_never_get_a_5xx(
    local_stack: Any, demo: Any, admin_key: str
) -> None:
    # GIVEN the OpenAPI document the running stack serves
    base = local_stack.base_url
    document = requests.get(f"{base}/openapi.json", timeout=30).json()
    failures: list[str] = []
    counts = {"media": 0, "null": 0, "cursor": 0}
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {admin_key}"
    # a route that ends the customer (archive) works on a customer of its own, never the demo customer the
    # other integration tests send usage for
    throwaway = "fuzz-archived"
    created = session.post(
        f"{base}/v1/customers",
        json={"external_id": throwaway, "name": "Fuzz", "currency": "USD"},
        timeout=TIMEOUT,
    )
    assert created.status_code in (201, 409), created.text

    def check(
        label: str, operation: dict[str, Any], response: requests.Response, expect: set[int] | None
    ) -> None:
        status = response.status_code
        if expect is not None and status not in expect:
            failures.append(f"{label}: status {status}, expected {sorted(expect)}: {response.text[:200]}")
        failures.extend(f"{label}: {problem}" for problem in _problems(operation, status, response.text))

    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            customer = throwaway if path.endswith("/archive") else demo.customer_id
            url = _url(base, path, operation, customer)
            query = _required_query(operation, customer)
            label = f"{method.upper()} {path}"
            if method in {"post", "put", "patch"}:
                # WHEN a body (with an unknown field, so that no work runs) is declared with each media
                # type THEN a JSON one reaches the route's body check (4xx), any other is 415
                # (every spelling on the first body operation; one JSON and one other type on the rest:
                # the check is one function for all, covered route by route in the functional tests)
                spellings = (
                    MEDIA_TYPES if not counts["media"] else {"APPLICATION/JSON": True, "text/plain": False}
                )
                for media_type, is_json in spellings.items():
                    headers = {"Content-Type": media_type} if media_type else {}
                    response = session.request(
                        method, url, params=query, data=UNKNOWN_FIELD, headers=headers, timeout=TIMEOUT
                    )
                    expect = {400, 422} if is_json else {415}
                    check(f"{label} as {media_type}", operation, response, expect)
                    counts["media"] += 1
                # WHEN each property of the body is null THEN a 4xx or success, never a 5xx
                for name in _body_properties(document, operation):
                    response = session.request(method, url, params=query, json={name: None}, timeout=TIMEOUT)
                    check(f"{label} with {name}: null", operation, response, None)
                    counts["null"] += 1
            names = {p["name"] for p in operation.get("parameters") or [] if p.get("in") == "query"}
            if "starting_after" in names:
                # WHEN a forged cursor is sent THEN 400 (or 422 for one the schema refuses), never a 5xx
                for cursor in FORGED_CURSORS:
                    response = session.get(url, params={**query, "starting_after": cursor}, timeout=TIMEOUT)
                    check(f"{label} with cursor {cursor[:20]}", operation, response, {400, 422})
                    counts["cursor"] += 1

    assert not failures, "\n".join(failures[:40])
    assert counts["media"] >= 40 and counts["null"] >= 40 and counts["cursor"] >= 40, counts
