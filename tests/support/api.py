"""Building API Gateway proxy events for handler tests from the JSON fixtures in events/."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[2] / "events"


def fixture(name: str) -> dict[str, Any]:
    """A sample event from events/ (the same files `sam local invoke -e` takes)."""
    return json.loads((EVENTS / name).read_text())


def api_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: str | None = None,
    scopes: str | None = "ingest read admin",
    query: dict[str, str] | None = None,
    path_parameters: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A REST API proxy event as API Gateway sends it after the authorizer allowed ``scopes``."""
    event = fixture("ingest_api.json")
    event["httpMethod"] = method
    event["path"] = path
    event["resource"] = path
    event["body"] = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    event["pathParameters"] = path_parameters
    event["headers"] = {**event["headers"], **(headers or {})}
    event["requestContext"]["requestId"] = str(uuid.uuid4())
    event["requestContext"]["httpMethod"] = method
    event["requestContext"]["path"] = f"/dev{path}"
    if scopes is None:
        event["requestContext"].pop("authorizer", None)
    else:
        event["requestContext"]["authorizer"] = {
            "principalId": "key:0123456789ab",
            "key_id": "0123456789ab",
            "scopes": scopes,
        }
    return event


def call(
    handler: Any, event: dict[str, Any], *, check_contract: bool = True
) -> tuple[int, Any, dict[str, str]]:
    """Invoke an API handler; returns (status, parsed JSON body or text, headers). A JSON answer must be
    one docs/openapi.json describes for the request (``tests.support.contract``); ``check_contract=False``
    is for tests that send what no client would (an API Gateway event a route does not serve)."""
    from tests.support.contract import check_answer
    from tests.support.lambda_context import FakeContext

    response = handler(event, FakeContext())
    body = response.get("body") or ""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = body
    headers = dict(response.get("headers") or {})
    headers.update({k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items() if v})
    if check_contract and str(headers.get("Content-Type", "")).startswith("application/json"):
        check_answer(event["httpMethod"], event["path"], response["statusCode"], parsed)
    return response["statusCode"], parsed, headers
