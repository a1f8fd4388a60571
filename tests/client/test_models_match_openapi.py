"""The client's models against docs/openapi.json: same components, same fields, same required fields,
compatible types. A change on either side that the other does not follow fails here."""

from __future__ import annotations

import inspect
import tomllib
from typing import Any

import pytest
from pydantic import BaseModel

import neruba_client
from neruba_client import models
from tests.client.openapi_shapes import ROOT, covered, kinds, load_document

DOCUMENT = load_document()
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]
# models the client sends (the API must accept everything they can hold); the rest are answers (the
# client must accept everything the API can send)
SENT = {"Event", "IngestRequest"}
MODELS = sorted(
    (
        cls
        for cls in vars(models).values()
        if inspect.isclass(cls)
        and issubclass(cls, BaseModel)
        and cls.__module__ == models.__name__
        and not cls.__name__.startswith("_")
    ),
    key=lambda cls: cls.__name__,
)


def _component(cls: type[BaseModel]) -> dict[str, Any]:
    if cls is models.Event:  # the event of IngestRequest is inline in the document
        items: dict[str, Any] = SCHEMAS["IngestRequest"]["properties"]["events"]["items"]
        return items
    assert cls.__name__ in SCHEMAS, f"docs/openapi.json has no component {cls.__name__}"
    return SCHEMAS[cls.__name__]


def test_the_package_version_is_the_api_version() -> None:
    project = tomllib.loads((ROOT / "clients" / "python" / "pyproject.toml").read_text())["project"]
    assert project["name"] == "neruba-client"
    assert project["version"] == DOCUMENT["info"]["version"] == neruba_client.__version__
    assert set(project["dependencies"]) == {"httpx>=0.27,<1", "pydantic>=2.7,<3"}


def test_every_answer_of_a_client_route_has_its_model() -> None:
    from neruba_client.routes import ROUTES

    answered = {spec.response.__name__ for spec in ROUTES.values()}
    assert answered <= {cls.__name__ for cls in MODELS}
    referenced = set(answered) | {"ErrorResponse"}
    todo = list(referenced)
    while todo:
        for ref in _refs(SCHEMAS[todo.pop()]):
            name = ref.rsplit("/", 1)[-1]
            if name not in referenced:
                referenced.add(name)
                todo.append(name)
    missing = referenced - {cls.__name__ for cls in MODELS}
    assert not missing, f"components used by the client's answers without a model: {sorted(missing)}"


def _refs(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        if "$ref" in schema:
            found.add(schema["$ref"])
        for value in schema.values():
            found |= _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= _refs(value)
    return found


@pytest.mark.parametrize("cls", MODELS, ids=lambda cls: cls.__name__)
def test_model_fields_match_the_component(cls: type[BaseModel]) -> None:
    component = _component(cls)
    mode = "serialization" if cls.__name__ in SENT else "validation"
    mine = cls.model_json_schema(mode=mode, ref_template="#/components/schemas/{model}")
    documented = component.get("properties", {})
    assert set(mine["properties"]) == set(documented), "fields differ"
    assert set(mine.get("required", [])) == set(component.get("required", [])), "required fields differ"
    for name, field_schema in documented.items():
        doc_kinds, my_kinds = kinds(field_schema), kinds(mine["properties"][name], frozenset({"Event"}))
        if cls.__name__ in SENT:
            assert covered(my_kinds, doc_kinds), f"{name}: sends {my_kinds}, the API takes {doc_kinds}"
        else:
            assert covered(doc_kinds, my_kinds), f"{name}: the API sends {doc_kinds}, model reads {my_kinds}"


def test_the_drift_check_notices_a_changed_field() -> None:
    # the comparison itself: an integer where the document says string, a missing field
    assert not covered(kinds({"type": "string"}), kinds({"type": "integer"}))
    assert not covered(
        kinds({"type": "array", "items": {"type": "number"}}),
        kinds({"type": "array", "items": {"type": "integer"}}),
    )
    assert covered(
        kinds({"anyOf": [{"type": "string"}, {"type": "null"}]}),
        kinds({"anyOf": [{"type": "string"}, {"type": "null"}, {"type": "number"}]}),
    )

    class CustomerView(models.CustomerView):
        pass

    schema = CustomerView.model_json_schema()
    assert set(schema["properties"]) == set(SCHEMAS["CustomerView"]["properties"])
