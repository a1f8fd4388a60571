"""An error's ``param`` is an unambiguous path into the request: a name made of letters, digits, ``_``
and ``-`` is written as is (``events.3.properties.tokens``), any other key in brackets as a JSON string
(``events.0.properties["a.b"]``), so a key holding a dot never reads as two levels."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.api import api_event, call


def _post_events(*events: dict[str, Any]) -> tuple[int, Any]:
    from functions.ingest_api.app import lambda_handler

    status, body, _ = call(lambda_handler, api_event("POST", "/v1/events", body={"events": list(events)}))
    return status, body


def _ev(tx: str, **properties: Any) -> dict[str, Any]:
    return {"transaction_id": tx, "customer_id": "acme", "code": "api_calls", "properties": properties}


@pytest.mark.parametrize(
    ("key", "param"),
    [
        ("a.b", 'events.1.properties["a.b"]'),
        ("a", "events.1.properties.a"),
        ('x"]y', 'events.1.properties["x\\"]y"]'),
        ("sp ace", 'events.1.properties["sp ace"]'),
        ("[0]", 'events.1.properties["[0]"]'),
        ("dash-ed_1", "events.1.properties.dash-ed_1"),
    ],
)
def test_a_property_key_is_one_segment_of_the_param_path(catalog: Any, key: str, param: str) -> None:
    # GIVEN an event whose property under ``key`` holds an object (properties hold scalars), next to a
    # valid one
    status, body = _post_events(_ev("ok"), _ev("bad", **{key: {"nested": 1}}))
    # THEN the per-event error names the key as one segment
    assert status == 202, body
    error = body["events"][1]["error"]
    assert (error["param"], error["code"]) == (param, "invalid_property"), error
    assert param.removeprefix("events.1.") in error["message"]
    # AND a 400 all_events_rejected names the same path in its details
    status, body = _post_events(_ev("bad", **{key: {"nested": 1}}))
    assert status == 400 and body["error"]["details"][0]["param"] == param.replace("events.1", "events.0")


def test_a_number_that_cannot_be_stored_names_its_key_as_one_segment(catalog: Any) -> None:
    status, body = _post_events(_ev("ok"), _ev("big", **{"a.b": 1, "c.d": json.loads("1E+200")}))
    assert status == 202, body
    assert body["events"][1]["error"]["param"] == 'events.1.properties["c.d"]'


def test_a_metadata_key_with_a_dot_in_a_body_error(catalog: Any) -> None:
    from functions.admin_api.app import lambda_handler

    status, body, _ = call(
        lambda_handler,
        api_event(
            "POST",
            "/v1/customers",
            body={"external_id": "dotted", "name": "D", "currency": "USD", "metadata": {"crm.id": 5}},
            scopes="admin",
        ),
    )
    assert status == 422, body
    assert [d["param"] for d in body["error"]["details"]] == ['metadata["crm.id"]']


def test_a_map_key_and_its_value_at_fault_are_told_apart(catalog: Any) -> None:
    from functions.admin_api.app import lambda_handler

    # WHEN a metadata entry has both a key and a value over their limits
    key, value = "k" * 50, "v" * 501
    body = {"external_id": "both", "name": "B", "currency": "USD", "metadata": {key: value}}
    status, answer, _ = call(lambda_handler, api_event("POST", "/v1/customers", body=body, scopes="admin"))
    # THEN two problems on the entry's path, one saying it is about the key, the other about the value
    assert status == 422, answer
    messages = sorted(d["message"] for d in answer["error"]["details"])
    assert len(messages) == 2 and len({d["param"] for d in answer["error"]["details"]}) == 1
    about_key = [m for m in messages if m.startswith("The key of ")]
    assert len(about_key) == 1 and "40" in about_key[0], messages
