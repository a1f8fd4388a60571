"""/health, /ready, docs posture, unknown routes: the one error shape everywhere."""

from __future__ import annotations

import importlib
from typing import Any

import boto3
import pytest

from neruba.dal.keys import KeysRepository
from neruba.settings import get_settings
from tests.support.api import api_event, call


def _system_handler() -> Any:
    import functions.system_api.app as module

    get_settings.cache_clear()
    return importlib.reload(module).lambda_handler


def test_health_needs_nothing(aws: dict[str, str]) -> None:
    status, body, _ = call(_system_handler(), api_event("GET", "/health", scopes=None))
    assert status == 200 and body["status"] == "ok"


def test_ready_when_every_table_and_queue_is_reachable(aws: dict[str, str]) -> None:
    status, body, _ = call(_system_handler(), api_event("GET", "/ready", scopes=None))
    assert status == 200, body
    assert {c["name"] for c in body["checks"]} >= {"keys_table", "usage_table", "ingest_queue"}


def test_ready_is_503_naming_the_missing_table(aws: dict[str, str]) -> None:
    boto3.client("dynamodb").delete_table(TableName=get_settings().usage_table)
    status, body, _ = call(_system_handler(), api_event("GET", "/ready", scopes=None))
    assert status == 503
    assert body["error"]["code"] == "not_ready"
    assert [d["param"] for d in body["error"]["details"]] == ["usage_table"]


def _admin_headers(scope: str = "admin") -> dict[str, str]:
    token = KeysRepository(get_settings().keys_table).create(frozenset([scope]), name="ops")[0]  # type: ignore[list-item]
    return {"Authorization": f"Bearer {token}"}


def test_ready_names_no_physical_resource_without_an_admin_key(aws: dict[str, str]) -> None:
    settings = get_settings()
    physical = [settings.usage_table, settings.keys_table, settings.ingest_queue_url]
    handler = _system_handler()
    _, anonymous, _ = call(handler, api_event("GET", "/ready", scopes=None))
    _, read_key, _ = call(handler, api_event("GET", "/ready", scopes=None, headers=_admin_headers("read")))
    for body in (anonymous, read_key):
        assert body["status"] == "ready"
        assert not any(name in str(body) for name in physical), body
    _, admin, _ = call(handler, api_event("GET", "/ready", scopes=None, headers=_admin_headers()))
    assert settings.usage_table in str(admin["checks"])

    boto3.client("dynamodb").delete_table(TableName=settings.usage_table)
    status, failed, _ = call(handler, api_event("GET", "/ready", scopes=None))
    assert status == 503 and settings.usage_table not in str(failed)
    status, failed, _ = call(handler, api_event("GET", "/ready", scopes=None, headers=_admin_headers()))
    assert status == 503 and settings.usage_table in str(failed)


def test_ready_is_503_on_invalid_configuration(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    handler = _system_handler()
    monkeypatch.setenv("NERUBA_INGEST_MAX_AGE_DAYS", "-1")
    status, body, _ = call(handler, api_event("GET", "/ready", scopes=None))
    assert status == 503
    assert body["error"]["details"][0]["param"] == "NERUBA_INGEST_MAX_AGE_DAYS"
    assert "-1" not in str(body["error"]["details"])  # values only with an admin key
    status, body, _ = call(handler, api_event("GET", "/ready", scopes=None, headers=_admin_headers()))
    assert status == 503
    assert "NERUBA_INGEST_MAX_AGE_DAYS" in body["error"]["details"][0]["message"]


def test_unknown_route_is_404_in_the_error_shape(aws: dict[str, str]) -> None:
    status, body, headers = call(_system_handler(), api_event("GET", "/nope", scopes=None))
    assert status == 404
    assert body["error"]["code"] == "route_not_found"
    assert body["error"]["request_id"] == headers["X-Request-Id"]


def test_docs_on_locally_and_document_every_route(aws: dict[str, str]) -> None:
    handler = _system_handler()
    status, spec, _ = call(handler, api_event("GET", "/openapi.json", scopes=None))
    assert status == 200
    paths = set(spec["paths"])
    assert {
        "/health",
        "/ready",
        "/v1/events",
        "/v1/events/{transaction_id}",
        "/v1/ingest/outcomes",
        "/v1/customers/{customer_id}/usage",
    } <= paths
    assert "bearerAuth" in spec["components"]["securitySchemes"]
    status, page, _ = call(handler, api_event("GET", "/docs", scopes=None))
    assert status == 200 and "swagger" in page.lower()


def test_docs_off_in_prod_by_default(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NERUBA_STAGE", "prod")
    monkeypatch.setenv("NERUBA_DOCS_ENABLED", "false")
    handler = _system_handler()
    for path in ("/docs", "/openapi.json"):
        status, body, _ = call(handler, api_event("GET", path, scopes=None))
        assert (status, body["error"]["code"]) == (404, "route_not_found")


def test_docs_in_prod_when_enabled_need_an_admin_key(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NERUBA_STAGE", "prod")
    monkeypatch.setenv("NERUBA_DOCS_ENABLED", "true")
    handler = _system_handler()
    keys = KeysRepository(get_settings().keys_table)
    admin, _ = keys.create(frozenset({"admin"}))
    reader, _ = keys.create(frozenset({"read"}))
    cases = [
        (None, 401),
        (f"Bearer {reader}", 403),
        ("Bearer nrb_0123456789ab_" + "y" * 43, 401),
        (f"Bearer {admin}", 200),
    ]
    for header, expected in cases:
        headers = {"Authorization": header} if header else {}
        event = api_event("GET", "/openapi.json", scopes=None, headers=headers)
        if header is None:
            event["headers"].pop("Authorization", None)
        status, _, _ = call(handler, event)
        assert status == expected, header


def test_docs_open_in_dev_without_a_key(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a dev stage with docs enabled
    monkeypatch.setenv("NERUBA_STAGE", "dev")
    monkeypatch.setenv("NERUBA_DOCS_ENABLED", "true")
    handler = _system_handler()
    # WHEN the docs are read without any key
    event = api_event("GET", "/openapi.json", scopes=None)
    event["headers"].pop("Authorization", None)
    status, spec, _ = call(handler, event)
    # THEN they are served, and they document the operations routes too
    assert status == 200
    assert {"/admin/sweeps", "/admin/sweeps/{sweep_id}"} <= set(spec["paths"])
    page = api_event("GET", "/docs", scopes=None)
    page["headers"].pop("Authorization", None)
    assert call(handler, page)[0] == 200


def test_docs_in_prod_refuse_an_ingest_key_and_a_disabled_flag_wins_over_a_key(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NERUBA_STAGE", "prod")
    monkeypatch.setenv("NERUBA_DOCS_ENABLED", "true")
    keys = KeysRepository(get_settings().keys_table)
    ingest, _ = keys.create(frozenset({"ingest", "read"}))
    admin, _ = keys.create(frozenset({"admin"}))
    status, body, _ = call(
        _system_handler(),
        api_event("GET", "/docs", scopes=None, headers={"Authorization": f"Bearer {ingest}"}),
    )
    assert (status, body["error"]["code"]) == (403, "insufficient_scope")
    # WHEN docs are disabled in prod, even an admin key gets the plain 404
    monkeypatch.setenv("NERUBA_DOCS_ENABLED", "false")
    status, body, _ = call(
        _system_handler(),
        api_event("GET", "/docs", scopes=None, headers={"Authorization": f"Bearer {admin}"}),
    )
    assert (status, body["error"]["code"]) == (404, "route_not_found")


@pytest.mark.parametrize(("path", "status"), [("/health", 200), ("/nope", 404), ("/ready", 200)])
def test_no_answer_may_be_stored_by_a_cache(aws: dict[str, str], path: str, status: int) -> None:
    # the API answers with account data to a key: no browser or proxy cache may keep any of it
    got, _, headers = call(_system_handler(), api_event("GET", path, scopes=None))
    assert got == status
    assert headers.get("Cache-Control") == "no-store"


def test_a_refused_request_is_not_stored_either(aws: dict[str, str]) -> None:
    from functions.ingest_api.app import lambda_handler

    status, _, headers = call(lambda_handler, api_event("POST", "/v1/events", body={}, scopes="read"))
    assert status == 403
    assert headers.get("Cache-Control") == "no-store"
