"""Every request body in docs/openapi.json is closed at every level: an object lists its fields and
refuses others (``additionalProperties: false``), or is a map whose values have a schema. A body model
that ignored or allowed unknown fields would show here as an open object."""

from __future__ import annotations

from typing import Any

from tests.support.contract import document

FREE_FORM = {"metadata", "properties"}  # maps of the client's own keys, values typed by the map's schema


def _open_parts(schema: dict[str, Any], path: str, seen: frozenset[str], out: list[str]) -> None:
    components = document()["components"]["schemas"]
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return
        seen, schema = seen | {name}, components[name]
    if schema.get("type") == "object" or "properties" in schema:
        extra = schema.get("additionalProperties")
        if schema.get("properties") and extra is not False:
            out.append(f"{path}: fields listed but others allowed")
        if (
            not schema.get("properties")
            and not isinstance(extra, dict)
            and path.rsplit(".", 1)[-1] not in FREE_FORM
        ):
            out.append(f"{path}: an object without a schema")
        if isinstance(extra, dict):
            _open_parts(extra, path + "{}", seen, out)
    for name, sub in (schema.get("properties") or {}).items():
        _open_parts(sub, f"{path}.{name}", seen, out)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key) or []:
            _open_parts(sub, path, seen, out)
    if isinstance(schema.get("items"), dict):
        _open_parts(schema["items"], path + "[]", seen, out)


def test_every_request_body_refuses_unknown_fields_at_every_level() -> None:
    problems: list[str] = []
    for path, operations in document()["paths"].items():
        for method, operation in operations.items():
            body = (operation.get("requestBody") or {}).get("content", {}).get("application/json")
            if body:
                _open_parts(body["schema"], f"{method.upper()} {path}", frozenset(), problems)
    assert not problems, "\n".join(problems)


def test_the_ingest_answer_and_the_stored_event_are_closed_schemas() -> None:
    schemas = document()["components"]["schemas"]
    for name in ("IngestResponse", "EventStatus", "EventError", "EventOutcome", "StoredEvent"):
        assert schemas[name].get("additionalProperties") is False, name
    outcome = schemas["StoredEvent"]["properties"]["outcomes"]["items"]
    assert outcome == {"$ref": "#/components/schemas/EventOutcome"}
