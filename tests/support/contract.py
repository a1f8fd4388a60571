"""Every API answer a test receives is checked against the OpenAPI document the code generates.

``check_answer`` finds the documented operation of a request (method and path template), and fails when
the status is not one the operation documents or the body does not match that status's schema. A request
no operation serves (404 route_not_found, 405) must answer the one error shape. Every date-time in an
answer reads in UTC with ``Z`` (``time_problems``), whichever route built it. The document is built
once per process from the routes (``neruba openapi``), so a route and its reference cannot drift apart.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from jsonschema import Draft202012Validator

UNDOCUMENTED = {"/docs", "/openapi.json"}  # the reference itself (served only where docs are enabled)


@functools.cache
def document() -> dict[str, Any]:
    from neruba_tools.cli import openapi_text

    return json.loads(openapi_text())  # type: ignore[no-any-return]


@functools.cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    paths = document()["paths"]
    found = [(re.compile("^" + re.sub(r"\{\w+\}", "[^/]+", p) + "$"), p) for p in paths]
    return sorted(found, key=lambda item: item[1].count("{"))  # literal segments win over parameters


def operation_of(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """(path template, operation) of the documented operation serving ``method path``."""
    for pattern, template in _templates():
        if pattern.match(path):
            operation = document()["paths"][template].get(method.lower())
            if operation is not None:
                return template, operation
    return None


@functools.cache
def _validator(ref: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": ref, "components": document()["components"]})


def _schema_problems(schema: dict[str, Any], body: Any) -> list[str]:
    if "$ref" in schema:
        validator = _validator(schema["$ref"])
    else:
        validator = Draft202012Validator({**schema, "components": document()["components"]})
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<body>'}: {e.message[:300]}"
        for e in validator.iter_errors(body)
    ]


def answer_problems(method: str, path: str, status: int, body: Any) -> list[str]:
    """What is wrong with an answer, measured against the document (empty when it conforms)."""
    found = operation_of(method, path)
    if found is None and path in UNDOCUMENTED:
        return []
    if found is None:
        if status < 400:
            return [f"{method} {path} answered {status} but no operation documents it"]
        return _schema_problems({"$ref": "#/components/schemas/ErrorResponse"}, body)
    template, operation = found
    return operation_problems(f"{method} {template}", operation, status, body)


def operation_problems(label: str, operation: dict[str, Any], status: int, body: Any) -> list[str]:
    """What is wrong with an answer of ``operation`` (an operation object of the document)."""
    response = operation["responses"].get(str(status))
    if response is None:
        return [f"{label}: status {status} is not documented ({sorted(operation['responses'])})"]
    schema = ((response.get("content") or {}).get("application/json") or {}).get("schema")
    if schema is None:
        return [f"{label}: status {status} documents no JSON body"]
    return [f"{label} {status}: {p}" for p in _schema_problems(schema, body)]


# A date-time with an offset (RFC 3339). The client's own maps are the client's text, echoed as sent.
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
# The one form a time takes in an answer: RFC 3339 in UTC with Z, to the second at least.
FULL_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
# Text that is a time, or a label of one cut short: a calendar date, then T and some of a time
# ("2026-03-01T06", "2026-03-01T06:05", "2026-03-01T06:05:00+00:00"); and a bare date ("2026-03-01"),
# a time's label only in a field named as a time holds one (``timefmt.TIME_KEYS``, ``TIME_SUFFIXES``):
# elsewhere it may be other text (Stripe's ``api_version`` is ``2024-06-20``).
TIME_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}T", re.ASCII)
DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)
CLIENT_MAPS = frozenset({"metadata", "properties", "filters", "group"})  # as timefmt.CLIENT_MAPS


def time_problems(body: Any, where: str = "", field: str = "") -> list[str]:
    """Every time in ``body`` not written in full in UTC with ``Z`` (``2026-01-02T03:04:05Z``): a time
    with an offset, and a label cut short (an hour ``2026-01-02T03``, a minute ``2026-01-02T03:04``, or a
    day ``2026-01-02`` in a time field), as a value or as a map's key (``field``: the name ``body`` is
    under)."""
    if isinstance(body, dict):
        return [
            problem
            for key, value in body.items()
            if key not in CLIENT_MAPS
            for problem in _key_problems(key, f"{where}/{key}") + time_problems(value, f"{where}/{key}", key)
        ]
    if isinstance(body, list):
        return [
            problem for n, value in enumerate(body) for problem in time_problems(value, f"{where}/{n}", field)
        ]
    if isinstance(body, str) and _cut_short(body, _time_field(field)):
        return [f"{where or '<body>'}: the time {body!r} is not in UTC with Z"]
    return []


def _time_field(name: str) -> bool:
    from neruba.timefmt import TIME_KEYS, TIME_SUFFIXES

    return name in TIME_KEYS or name.endswith(TIME_SUFFIXES)


def _cut_short(text: str, time_field: bool) -> bool:
    if FULL_Z.match(text):
        return False
    return bool(TIME_TEXT.match(text) or (time_field and DATE_ONLY.match(text)))


def _key_problems(key: Any, where: str) -> list[str]:
    if isinstance(key, str) and _cut_short(key, time_field=True):
        return [f"{where}: the key {key!r} is a time not in UTC with Z"]
    return []


def check_answer(method: str, path: str, status: int, body: Any) -> None:
    """Fail (AssertionError) when the answer is not one the document describes, or gives a time in
    another form than UTC with ``Z``."""
    problems = answer_problems(method, path, status, body) + time_problems(body)
    assert not problems, "the answer does not match docs/openapi.json:\n" + "\n".join(problems[:10])
