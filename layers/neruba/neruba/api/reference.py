"""The OpenAPI document as published: what the generator emits, tidied to what the API really answers.

The generator adds a 422 answer in its own shape (``HTTPValidationError``) to every operation; every
operation that takes input documents its 422 in the one error shape instead, and one that takes none
(``/health``, ``/ready``) can never answer 422, so that answer is dropped, and with it every component
nothing refers to any more.

Example:
    >>> spec = {"paths": {"/health": {"get": {"responses": {"200": {}, "422": {"content": {
    ...     "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}}}}}},
    ...     "components": {"schemas": {"HTTPValidationError": {}, "Health": {}}}}
    >>> tidy(spec)["paths"]["/health"]["get"]["responses"]
    {'200': {}}
"""

from __future__ import annotations

import json
from typing import Any

GENERATOR_ERRORS = ("HTTPValidationError", "ResponseValidationError")


def _refs(value: Any) -> set[str]:
    text = json.dumps(value)
    found = set()
    for part in text.split('"#/components/schemas/')[1:]:
        found.add(part.split('"', 1)[0])
    return found


def tidy(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` without the generator's own error answers and without unreferenced schemas."""
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses") or {}
            for status in list(responses):
                if _refs(responses[status]) & set(GENERATOR_ERRORS):
                    del responses[status]
    schemas = (spec.get("components") or {}).get("schemas") or {}
    used = _refs(spec.get("paths"))
    while True:  # what the used schemas refer to, transitively
        more = set().union(*(_refs(schemas[name]) for name in used if name in schemas)) - used
        if not more:
            break
        used |= more
    for name in list(schemas):
        if name not in used:
            del schemas[name]
    return spec
