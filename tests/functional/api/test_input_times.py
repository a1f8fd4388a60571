"""Times the API takes follow one text rule, RFC 3339 (docs/api.md, "Times the API takes"): a query window,
a body time or an event's timestamp given as Unix seconds, without seconds, with ``+0200`` or with a space
for ``T`` is refused with a 4xx in the one error shape, never read as something else."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from tests.functional.api.test_access_control import ROUTES
from tests.support.api import api_event, call

FOLDER = {(method, path): folder for folder, method, path, _ in ROUTES}
GOOD = "2026-12-01T10:00:00Z"
BAD = ["1764583200", "1764583200.5", "2026-12-01T10:00Z", "2026-12-01T10:00:00+0200", "2026-12-01 10:00:00Z"]


def _get(template: str, query: dict[str, str], scopes: str = "read admin") -> tuple[int, Any]:
    module = importlib.import_module(f"functions.{FOLDER[('GET', template)]}.app")
    event = api_event("GET", template, query=query, scopes=scopes)
    status, answer, _ = call(module.lambda_handler, event)
    return status, answer


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("template", ["/v1/ingest/outcomes", "/admin/webhook-events"])
def test_a_query_window_outside_rfc_3339_is_refused(aws: Any, template: str, bad: str) -> None:
    status, answer = _get(template, {"from": bad, "to": GOOD})
    assert 400 <= status < 500, answer
    assert answer["error"]["code"] and answer["error"].get("param") in (None, "from"), answer


@pytest.mark.parametrize(
    "text", ["2026-12-01T10:00:00Z", "2026-12-01t10:00:00.123456789z", "2026-12-01T12:00:00+02:00"]
)
def test_rfc_3339_forms_are_taken(text: str) -> None:
    from neruba.timefmt import parse_input_time

    assert parse_input_time(text).isoformat().startswith("2026-12-01T1")


@pytest.mark.parametrize("bad", BAD)
def test_an_event_timestamp_outside_rfc_3339_is_refused(bad: str) -> None:
    from pydantic import ValidationError

    from neruba.models.events import UsageEventIn

    with pytest.raises(ValidationError):
        UsageEventIn.model_validate(
            {"transaction_id": "t1", "customer_id": "c", "code": "m", "timestamp": bad, "properties": {}}
        )
