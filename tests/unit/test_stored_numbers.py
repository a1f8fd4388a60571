"""DynamoDB's number contract where we write: what the serializer refuses and how it writes numbers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from neruba.dal.dynamo import NumberNotStorableError, to_item


@pytest.mark.parametrize(
    "value",
    ["1E-131", "-1E-131", "1E+126", "-1E+400", "1" * 39, "0." + "1" * 39],
)
def test_numbers_dynamodb_refuses_are_refused_before_any_request(value: str) -> None:
    # boto3's own serializer lets 1E-131 and 1E+126 through (DynamoDB refuses them)
    with pytest.raises(NumberNotStorableError) as caught:
        to_item({"amount": Decimal(value)})
    assert str(caught.value).startswith("amount: ")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("1E-130", "0." + "0" * 129 + "1"),
        ("9.9999999999999999999999999999999999999E+125", "99999999999999999999999999999999999999" + "0" * 88),
        ("1." + "0" * 50, "1"),  # 51 digits, but trailing zeros do not count (boto3 alone refuses it)
        ("1E+3", "1000"),
        ("-2.50", "-2.5"),
        ("0E-10", "0"),
    ],
)
def test_numbers_dynamodb_stores_are_written_as_plain_digits(value: str, text: str) -> None:
    assert to_item({"n": Decimal(value)}) == {"n": {"N": text}}


def test_integers_sets_and_nested_numbers_are_held_to_the_same_rule() -> None:
    assert to_item({"n": 10**40}) == {"n": {"N": str(10**40)}}  # one significant digit
    with pytest.raises(NumberNotStorableError):
        to_item({"n": 10**40 + 1})
    with pytest.raises(NumberNotStorableError):
        to_item({"m": {"inner": [Decimal("1E+200")]}})
    with pytest.raises(NumberNotStorableError):
        to_item({"ns": {Decimal("1E-200")}})


def test_numbers_read_back_exactly_however_long_dynamodb_writes_them() -> None:
    from neruba.dal.dynamo import from_item

    item = {"a": {"N": "1" + "0" * 38}, "b": {"N": "0.000000000000000000000000000000000000000001"}}
    assert from_item(item) == {"a": Decimal(10**38), "b": Decimal("1E-42")}
    assert from_item({"s": {"NS": ["1" + "0" * 50, "2"]}}) == {"s": {Decimal(10**50), Decimal(2)}}
