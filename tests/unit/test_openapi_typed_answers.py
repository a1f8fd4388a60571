"""Every answer in docs/openapi.json is typed at every level: no object in a response schema is free (no
fields and no schema for its values), no map has values without a schema, no value is left without a type.
A generated client and Swagger then show each field with its type and an example.

Models of stored documents (invoices, plans, subscriptions, sweeps) list the fields a client relies on,
typed, and allow more (``additionalProperties: true`` next to listed fields is not a free object)."""

from __future__ import annotations

from typing import Any

from tests.support.contract import document

# maps of the client's own keys (their values are typed by the map's own schema)
CLIENT_KEYS = {"metadata", "properties", "group"}
# values documented as any JSON value: copies of another record, whose shape depends on the action or
# check that wrote them (an audit record's before/after, a sweep repair's before/after and details)
ANY_JSON = {
    "<AuditRecord>.before",
    "<AuditRecord>.after",
    "<SweepItem>.before",
    "<SweepItem>.after",
    "<SweepCheck>.details{}",
}


def _exempt(path: str) -> bool:
    return any(path.endswith(name) for name in ANY_JSON)


def _free_parts(schema: dict[str, Any], path: str, seen: frozenset[str], out: list[str]) -> None:
    components = document()["components"]["schemas"]
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return
        seen, schema, path = seen | {name}, components[name], f"{path}<{name}>"
    extra = schema.get("additionalProperties")
    if schema.get("type") == "object" or "properties" in schema or extra is not None:
        if not schema.get("properties") and not isinstance(extra, dict) and not _exempt(path):
            out.append(f"{path}: an object without a schema")
        if isinstance(extra, dict):
            if not extra and path.rsplit(".", 1)[-1] not in CLIENT_KEYS:
                out.append(f"{path}: a map whose values have no schema")
            _free_parts(extra, path + "{}", seen, out)
    typed = ("type", "$ref", "anyOf", "oneOf", "allOf", "const", "enum")
    if not any(key in schema for key in typed):
        out.append(f"{path}: a value without a type")
    for name, sub in (schema.get("properties") or {}).items():
        _free_parts(sub, f"{path}.{name}", seen, out)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key) or []:
            _free_parts(sub, path, seen, out)
    if isinstance(schema.get("items"), dict):
        _free_parts(schema["items"], path + "[]", seen, out)


def _problems() -> list[str]:
    problems: list[str] = []
    for route, operations in document()["paths"].items():
        for method, operation in operations.items():
            for status, response in (operation.get("responses") or {}).items():
                body = (response.get("content") or {}).get("application/json")
                if body:
                    _free_parts(body["schema"], f"{method.upper()} {route} {status}", frozenset(), problems)
    return sorted(set(problems))


def test_no_response_schema_holds_an_untyped_object() -> None:
    problems = _problems()
    assert not problems, f"{len(problems)} free objects:\n" + "\n".join(problems)


def test_the_check_finds_a_free_object() -> None:
    # GIVEN the document with one free object put back (invoice lines as they were typed before)
    schemas = document()["components"]["schemas"]
    saved = schemas["Invoice"]["properties"]["lines"]
    schemas["Invoice"]["properties"]["lines"] = {"type": "array", "items": {"type": "object"}}
    try:
        # THEN the check names it
        assert any(p.endswith("<Invoice>.lines[]: an object without a schema") for p in _problems())
    finally:
        schemas["Invoice"]["properties"]["lines"] = saved


def test_the_models_once_free_are_typed_with_examples() -> None:
    schemas = document()["components"]["schemas"]
    for name in ("InvoiceLine", "ExplainedLine", "UpcomingWindow", "SweepCheck", "RerunCorrection"):
        assert schemas[name].get("properties") and schemas[name].get("examples"), name
    assert schemas["Invoice"]["properties"]["lines"]["items"] == {"$ref": "#/components/schemas/InvoiceLine"}
