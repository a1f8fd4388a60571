"""Every success answer in docs/openapi.json is typed at every level: no object in a response schema is
free (no fields and no schema for its values, or fields listed and anything else allowed besides), so a
generated client and Swagger show each field with its type and an example."""

from __future__ import annotations

from typing import Any

from tests.support.contract import document

# maps of the client's own keys: their values are typed by the map's own schema
CLIENT_KEYS = {"metadata", "properties", "group"}


def _free_parts(schema: dict[str, Any], path: str, seen: frozenset[str], out: list[str]) -> None:
    components = document()["components"]["schemas"]
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return
        seen, schema, path = seen | {name}, components[name], f"{path}<{name}>"
    extra = schema.get("additionalProperties")
    if schema.get("type") == "object" or "properties" in schema or extra is not None:
        if schema.get("properties") and extra not in (False, None) and not isinstance(extra, dict):
            out.append(f"{path}: fields listed and any other allowed")
        if not schema.get("properties") and not isinstance(extra, dict):
            out.append(f"{path}: an object without a schema")
        if isinstance(extra, dict):
            if not extra and path.rsplit(".", 1)[-1] not in CLIENT_KEYS:
                out.append(f"{path}: a map whose values have no schema")
            _free_parts(extra, path + "{}", seen, out)
    if schema.get("type") is None and not any(k in schema for k in ("$ref", "anyOf", "oneOf", "allOf", "const", "enum")):
        if path.rsplit(".", 1)[-1] not in CLIENT_KEYS and not path.endswith("{}"):
            out.append(f"{path}: a value without a type")
    for name, sub in (schema.get("properties") or {}).items():
        _free_parts(sub, f"{path}.{name}", seen, out)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key) or []:
            _free_parts(sub, path, seen, out)
    if isinstance(schema.get("items"), dict):
        _free_parts(schema["items"], path + "[]", seen, out)


def test_no_response_schema_holds_an_untyped_object() -> None:
    problems: list[str] = []
    for route, operations in document()["paths"].items():
        for method, operation in operations.items():
            for status, response in (operation.get("responses") or {}).items():
                body = (response.get("content") or {}).get("application/json")
                if body:
                    _free_parts(body["schema"], f"{method.upper()} {route} {status}", frozenset(), problems)
    assert not problems, f"{len(problems)} free objects:\n" + "\n".join(sorted(set(problems)))
