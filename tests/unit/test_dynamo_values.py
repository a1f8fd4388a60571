"""DynamoDB value conversion: ``neruba.dal.dynamo`` follows boto3's TypeSerializer/TypeDeserializer exactly.

The functions never import boto3 (cold start); these tests hold the hand-written rules to boto3's own.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer

from neruba.dal.dynamo import from_item, from_value, to_item, to_value

SAMPLES: list[Any] = [
    None,
    True,
    False,
    0,
    -7,
    10**30,
    Decimal("0"),
    Decimal("1.50"),
    Decimal("-0.000001"),
    Decimal("12345678901234567890.123456789012345678"),
    Decimal("1E+100"),
    "",
    "naïve ünïcode",
    b"\x00\xffzlib",
    bytearray(b"abc"),
    {"a", "b"},
    {Decimal("1"), 2, Decimal("3.25")},
    {b"x", b"y"},
    frozenset({"f"}),
    set(),
    [],
    (),
    [1, "a", None, True, [Decimal("2.5")], {"k": "v"}],
    ("t", 1),
    {"nested": {"deeper": [{"n": Decimal("1.10")}, {"s": {"q"}}]}, "empty": {}},
]


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_serialization_matches_boto3(value: Any) -> None:
    # GIVEN a value of each kind the repositories write
    # WHEN both serializers convert it
    ours = to_value(value)
    theirs = TypeSerializer().serialize(value)
    # THEN the attribute values are the same
    assert ours == theirs


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_deserialization_matches_boto3_with_bytes_for_binary(value: Any) -> None:
    # GIVEN the stored attribute value of each kind
    stored = TypeSerializer().serialize(value)
    # WHEN both deserializers read it back
    ours = from_value(stored)
    theirs = _bytes_for_binary(TypeDeserializer().deserialize(stored))
    # THEN the values are the same (binary as bytes, which is what the repositories unwrap it to)
    assert ours == theirs
    assert type(ours) is type(theirs)


@pytest.mark.parametrize(
    "value",
    [
        1.5,
        Decimal("NaN"),
        Decimal("Infinity"),
        {1.5},
        object(),
        {"a", 1},
        Decimal("1E+200"),
        Decimal("1." + "1" * 40),
    ],
    ids=["float", "nan", "inf", "float-set", "object", "mixed-set", "overflow", "too-precise"],
)
def test_refusals_match_boto3(value: Any) -> None:
    # GIVEN a value DynamoDB cannot hold exactly (or no DynamoDB type fits)
    # WHEN both serializers try it
    with pytest.raises((TypeError, decimal.DecimalException)) as theirs:
        TypeSerializer().serialize(value)
    # THEN ours refuses it with the same exception type and message
    with pytest.raises(theirs.type) as ours:
        to_value(value)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("stored", [{}, {"X": "1"}])
def test_unreadable_attribute_values_are_refused_like_boto3(stored: dict[str, Any]) -> None:
    # GIVEN an empty or unknown attribute value
    with pytest.raises(TypeError) as theirs:
        TypeDeserializer().deserialize(stored)
    # WHEN / THEN ours refuses it with the same message
    with pytest.raises(TypeError) as ours:
        from_value(stored)
    assert str(ours.value) == str(theirs.value)


def test_items_leave_out_none_and_round_trip() -> None:
    # GIVEN a document with a None field
    values = {"pk": "CUS#a", "n": Decimal("3.10"), "gone": None, "tags": ["x"]}
    # WHEN it is written and read back
    item = to_item(values)
    # THEN None is left out and everything else comes back equal
    assert "gone" not in item
    assert from_item(item) == {"pk": "CUS#a", "n": Decimal("3.10"), "tags": ["x"]}


def _bytes_for_binary(value: Any) -> Any:
    if isinstance(value, Binary):
        return bytes(value.value)
    if isinstance(value, set) and value and all(isinstance(v, Binary) for v in value):
        return {bytes(v.value) for v in value}
    if isinstance(value, dict):
        return {k: _bytes_for_binary(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_bytes_for_binary(v) for v in value]
    return value
