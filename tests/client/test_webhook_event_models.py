"""The client's webhook event models against docs/openapi.json: one model per documented event type,
each reading the document's example body into its own data model, and newer types still reading."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from neruba_client import models
from tests.client.openapi_shapes import load_document

SCHEMAS: dict[str, Any] = load_document()["components"]["schemas"]
EVENT_ID = "evt_0123456789abcdef01234567"
PAYLOAD_REFS = [
    ref["$ref"].rsplit("/", 1)[-1] for ref in SCHEMAS["EventView"]["properties"]["payload"]["anyOf"]
]


def _event_type(component: str) -> str:
    value: str = SCHEMAS[component]["properties"]["type"]["const"]
    return value


def _view(event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "event",
        "id": EVENT_ID,
        "type": event_type,
        "customer_id": "acme",
        "sequence": 3,
        "created": "2026-03-01T00:00:00Z",
        "payload": payload,
        "deliveries": [],
        "attempts": [],
    }


def test_the_client_knows_every_documented_event_type_in_the_documents_order() -> None:
    documented = [_event_type(name) for name in PAYLOAD_REFS]
    assert documented == SCHEMAS["EventView"]["properties"]["type"]["enum"]
    assert list(models.EVENT_MODELS) == documented == list(get_args(models.WebhookEventType))
    assert [model.__name__ for model in models.EVENT_MODELS.values()] == PAYLOAD_REFS


@pytest.mark.parametrize("component", PAYLOAD_REFS)
def test_each_documented_example_reads_as_its_own_event_model(component: str) -> None:
    # GIVEN the body of an event built from the document's example of its data
    event_type = _event_type(component)
    data_ref = SCHEMAS[component]["properties"]["data"]["additionalProperties"]["$ref"]
    data_component = data_ref.rsplit("/", 1)[-1]
    example = SCHEMAS[data_component]["examples"][0]
    body = {
        "id": EVENT_ID,
        "object": "event",
        "created": "2026-03-01T00:00:00Z",
        "customer_id": "acme",
        "sequence": 3,
        "type": event_type,
        "data": {"object": example},
    }
    # WHEN an event view holding it is read
    view = models.EventView.model_validate(_view(event_type, body))
    # THEN the payload is the type's own model, its data the documented data model, no field lost
    assert type(view.payload) is models.EVENT_MODELS[event_type]
    assert type(view.payload).__name__ == component
    data = view.payload.data["object"]
    assert type(data).__name__ == data_component
    assert set(data.model_dump(exclude_unset=True)) | set(data.model_extra or {}) == set(example)


def test_a_subscription_event_reads_its_phases_and_previous_phases_typed() -> None:
    phase = {"plan_code": "pro", "plan_version": 2, "start_at": "2026-03-01T00:00:00Z", "end_at": None}
    body = {
        "id": EVENT_ID,
        "object": "event",
        "created": "2026-03-01T00:00:00Z",
        "customer_id": "acme",
        "sequence": 3,
        "type": "subscription.updated",
        "data": {
            "object": {
                "id": "sub_1",
                "customer_id": "acme",
                "status": "active",
                "start_at": "2026-02-01T00:00:00Z",
                "cancel_at_period_end": False,
                "phases": [phase],
                "previous_attributes": {"phases": [{**phase, "plan_version": 1}]},
            }
        },
    }
    view = models.EventView.model_validate(_view("subscription.updated", body))
    assert isinstance(view.payload, models.SubscriptionUpdatedEvent)
    data = view.payload.data["object"]
    assert isinstance(data.phases[0], models.Phase) and data.phases[0].plan_version == 2
    assert data.previous_attributes.phases[0].plan_version == 1


def test_an_event_and_an_endpoint_of_a_type_newer_than_the_client_still_read() -> None:
    # GIVEN an event type added to the API after this client was released
    body = {"id": EVENT_ID, "object": "event", "type": "invoice.voided", "data": {"object": {"id": "in_1"}}}
    # THEN the event view reads, its type as text and its payload as a plain object
    view = models.EventView.model_validate(_view("invoice.voided", body))
    assert view.type == "invoice.voided"
    assert isinstance(view.payload, dict) and view.payload["data"]["object"]["id"] == "in_1"
    # AND an endpoint subscribed to it reads too
    endpoint = models.Endpoint.model_validate(
        {
            "object": "webhook_endpoint",
            "id": "we_0123456789abcdef0123",
            "url": "https://hooks.example.test/neruba",
            "enabled_events": ["invoice.finalized", "invoice.voided"],
            "description": "",
            "enabled": True,
            "status": "enabled",
            "secret_hint": "abcd",
            "secrets_active": 1,
            "created_at": "2026-03-01T00:00:00Z",
            "updated_at": "2026-03-01T00:00:00Z",
        }
    )
    assert endpoint.enabled_events == ["invoice.finalized", "invoice.voided"]


def test_a_known_type_whose_body_does_not_match_its_model_falls_back_to_a_dict() -> None:
    # an invoice.finalized body without its required amounts is not forced into another event's model
    body = {
        "id": EVENT_ID,
        "object": "event",
        "created": "2026-03-01T00:00:00Z",
        "customer_id": "acme",
        "sequence": 3,
        "type": "invoice.finalized",
        "data": {"object": {"id": "in_1", "customer_id": "acme", "currency": "USD", "status": "finalized"}},
    }
    view = models.EventView.model_validate(_view("invoice.finalized", body))
    assert isinstance(view.payload, dict)
