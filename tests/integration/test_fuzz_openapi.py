"""Every operation of the OpenAPI document the running API serves, fuzzed by schemathesis over real HTTP.

For each operation schemathesis generates requests from the document (valid ones and, in the fuzz phase,
ones that break it) and sends them with an all-scopes key through the local gateway and authorizer. Each
answer must be: below 500; when an error, the one error shape; and a status code the document lists for
that operation. Half the cases fit the document and half break it on purpose (schemathesis' negative mode).
``NERUBA_FUZZ_EXAMPLES`` sets the examples per operation (the default, 10, keeps CI short).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("NERUBA_FUZZ_EXAMPLES", "10"))
ERROR_FIELDS = {"type", "code", "message", "request_id"}


@pytest.fixture(scope="module")
def admin_key(local_stack: Any) -> str:
    from neruba_tools.local.seed import seed_demo

    return seed_demo().api_key


def _documented(operation: Any) -> set[str]:
    return {str(code) for code in (operation.definition.raw.get("responses") or {})}


def _problems(operation: Any, status: int, text: str) -> list[str]:
    problems = []
    if status >= 500:
        problems.append(f"server error {status}")
    documented = _documented(operation)
    if str(status) not in documented and "default" not in documented:
        problems.append(f"status {status} is not documented (documented: {sorted(documented)})")
    if status >= 400:
        try:
            error = json.loads(text)["error"]
        except (ValueError, KeyError, TypeError):
            problems.append(f"error body is not the error shape: {text[:200]!r}")
        else:
            if not set(error) >= ERROR_FIELDS:
                problems.append(f"error lacks {sorted(ERROR_FIELDS - set(error))}: {error}")
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
                base_url=local_stack.base_url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30
            )
            seen[label].add(response.status_code)
            # THEN the answer is one the document promises, in the one error shape when an error
            for problem in _problems(operation, response.status_code, response.text):
                failures.append(f"{label}: {problem} (request {case.path_parameters} {case.body!r:.200})")

        run()

    for operation in operations:
        fuzz(operation)

    assert not failures, "\n".join(sorted(set(failures))[:40])
    assert all(seen.values()), f"operations never called: {[k for k, v in seen.items() if not v]}"
