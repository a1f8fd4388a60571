"""DynamoDB's number contract where we write: what the serializer refuses and how it writes numbers, and
the guard that lets a sum be added blind only when the result is exact."""

from __future__ import annotations

from decimal import Context, Decimal, Inexact, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from neruba.dal.dynamo import NumberNotStorableError, to_item
from neruba.domain.numbers import add_guard, number_problem


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


_storable = st.builds(
    lambda mantissa, exponent: Decimal(mantissa).scaleb(exponent),
    st.integers(-(10**38) + 1, 10**38 - 1) | st.integers(-(10**6), 10**6),
    st.integers(-20, 10),
)


@given(stored=_storable, total=_storable, scale_offset=st.integers(0, 8))
def test_a_blind_add_passes_its_guard_only_when_the_sum_is_exact_within_28_digits(
    stored: Decimal, total: Decimal, scale_offset: int
) -> None:
    guard = add_guard(total)
    if guard is None:
        return
    # the stored sum's scale: a bound on its lowest digit, as the aggregate item keeps it
    digits_exponent = stored.normalize(Context(prec=100)).as_tuple().exponent if stored else 0
    assert isinstance(digits_exponent, int)
    scale = min(0, digits_exponent) - scale_offset
    passes = guard.low_scale <= scale <= guard.high_scale and guard.low <= stored <= guard.high
    if passes:
        with localcontext(Context(prec=28, traps=[Inexact])):
            result = stored + total  # raises if 28 digits were not enough
        assert number_problem(result) is None


def test_the_guard_lets_ordinary_sums_through() -> None:
    guard = add_guard(Decimal("0.5"))
    assert guard is not None and guard.low_scale <= -1 <= guard.high_scale and guard.low <= 100 <= guard.high
    assert add_guard(Decimal("1E-128")) is None  # too fine: read and add exactly instead


def test_numbers_read_back_exactly_however_long_dynamodb_writes_them() -> None:
    from neruba.dal.dynamo import from_item

    item = {"a": {"N": "1" + "0" * 38}, "b": {"N": "0.000000000000000000000000000000000000000001"}}
    assert from_item(item) == {"a": Decimal(10**38), "b": Decimal("1E-42")}
    assert from_item({"s": {"NS": ["1" + "0" * 50, "2"]}}) == {"s": {Decimal(10**50), Decimal(2)}}
