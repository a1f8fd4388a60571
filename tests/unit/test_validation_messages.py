"""neruba.validation: one problem per field, named, in our words, whatever pydantic reported."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr, ValidationError

from neruba.models.catalog import Customer
from neruba.models.events import UsageEventIn
from neruba.validation import describe


def _problems(model: type[BaseModel], raw: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(raw)
    return [(p.param, p.code, p.message) for p in describe(info.value.errors())]


def _event(**properties: Any) -> dict[str, Any]:
    return {"transaction_id": "t", "customer_id": "acme", "code": "c", "properties": properties}


class _Bounded(BaseModel):
    """A union with a bounded numeric member (event numbers are checked by the storable-number rule
    instead, so the folding of union errors is shown on a model of its own)."""

    v: StrictBool | Annotated[StrictInt, Field(lt=10**38)] | StrictStr


def test_a_union_value_is_one_problem_naming_the_limit_it_broke() -> None:
    # GIVEN a value too large for the only numeric member of its union
    problems = _problems(_Bounded, {"v": 10**40})
    # THEN one problem, about the limit, not about booleans or strings
    assert problems == [("v", "less_than", "'v' must be less than " + str(10**38) + ".")]


def test_a_union_value_of_no_allowed_type_lists_the_types() -> None:
    assert _problems(UsageEventIn, _event(v=[1], w=None)) == [
        (
            "properties.v",
            "invalid_type",
            "'properties.v' must be a boolean, an integer, a number or a string.",
        ),
        ("properties.w", "null_not_allowed", "'properties.w' must not be null."),
    ]


def test_dict_keys_that_look_like_union_members_are_not_folded() -> None:
    # GIVEN two metadata values of the wrong type under keys shaped like pydantic's union labels
    problems = _problems(
        Customer, {"external_id": "a", "name": "n", "currency": "USD", "metadata": {"x-y": 1, "z-w": 2}}
    )
    # THEN each key is its own problem
    assert [p[0] for p in problems] == ["metadata.x-y", "metadata.z-w"]


def test_common_rules_are_in_our_words() -> None:
    problems = _problems(Customer, {"external_id": "a c", "name": "", "currency": "USD", "colour": 1})
    assert problems == [
        (
            "external_id",
            "string_pattern_mismatch",
            "'external_id' must be 1 to 128 letters, digits, '_', '.', ':', '@' or '-', starting with a "
            "letter or digit.",
        ),
        ("name", "string_too_short", "'name' must have at least 1 character(s)."),
        ("colour", "extra_forbidden", "'colour' is not a known field."),
    ]


def test_a_location_prefix_is_dropped_and_a_whole_body_problem_has_no_param() -> None:
    errors = [
        {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None},
        {"type": "int_parsing", "loc": ("body", "limit"), "msg": "Input should be ...", "input": "x"},
    ]
    problems = describe(errors, drop=("body",))
    assert [(p.param, p.message) for p in problems] == [
        (None, "The body is required."),
        ("limit", "'limit' must be an integer."),
    ]


def test_no_pattern_of_the_api_is_told_as_a_regular_expression() -> None:
    # GIVEN every pattern the models and routes use (their JSON schema lists them)
    import json
    import re

    from neruba.validation import _pattern_rule
    from neruba_tools.cli import openapi_text

    patterns = set(re.findall(r'"pattern": ("(?:[^"\\\\]|\\\\.)*")', openapi_text()))
    assert len(patterns) > 5
    for raw in patterns:
        pattern = json.loads(raw)
        # THEN each is told in words: no regular-expression syntax reaches a message
        words = _pattern_rule(pattern)
        assert not re.search(r"[\\^$\\[\\]{}]", words), (pattern, words)


def test_a_huge_field_name_is_cut_in_the_param_and_the_message() -> None:
    # GIVEN a metadata key of 60,000 characters with a value of the wrong type
    key = "k" * 60_000
    problems = _problems(Customer, {"external_id": "a", "name": "n", "currency": "USD", "metadata": {key: 1}})
    # THEN each problem names the field cut to 64 characters, never the whole key (the cut key, ending in
    # "...", is one bracketed segment of the path)
    assert problems
    for param, _code, message in problems:
        assert param.startswith('metadata["' + "k" * 64 + '..."]') and len(param) < 100
        assert len(message) < 300
