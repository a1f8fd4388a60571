"""Reading JSON-schema types as comparable sets, for the tests that hold the client to docs/openapi.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def load_document() -> dict[str, Any]:
    return json.loads((ROOT / "docs" / "openapi.json").read_text())


def kinds(schema: dict[str, Any], inline: frozenset[str] = frozenset()) -> frozenset[Any]:
    """The JSON types a schema allows: "string", "integer", ..., ("array", item kinds), ("ref", name);
    "any" when it does not say. A reference to a name in ``inline`` counts as a plain object (the
    document writes that schema in place)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return frozenset({"object" if name in inline else ("ref", name)})
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return frozenset().union(*(kinds(s, inline) for s in schema[key]))
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return kinds(schema["allOf"][0], inline)
    if "const" in schema:
        value = schema["const"]
        return frozenset({_type_of(value)})
    if "enum" in schema and "type" not in schema:
        return frozenset(_type_of(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind is None:
        return frozenset({"any"})
    if isinstance(kind, list):
        return frozenset().union(*(kinds({**schema, "type": k}, inline) for k in kind))
    if kind == "array":
        return frozenset({("array", kinds(schema.get("items", {}), inline))})
    return frozenset({kind})


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def covered(narrow: frozenset[Any], wide: frozenset[Any]) -> bool:
    """Every kind of ``narrow`` is allowed by ``wide`` (arrays compared item by item)."""
    if "any" in wide:
        return True
    for kind in narrow:
        if kind in wide:
            continue
        if (
            isinstance(kind, tuple)
            and kind[0] == "array"
            and any(isinstance(w, tuple) and w[0] == "array" and covered(kind[1], w[1]) for w in wide)
        ):
            continue
        return False
    return True
