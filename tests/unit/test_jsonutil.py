"""Exact JSON: no float ever enters or leaves."""

from __future__ import annotations

from decimal import Decimal

import pytest

from neruba import jsonutil


def test_fractions_parse_as_decimal_and_print_exactly() -> None:
    # GIVEN a number a float cannot hold
    text = '{"v": 0.1000000000000000055511151231257827, "n": 3}'
    # WHEN it goes through loads and dumps
    value = jsonutil.loads(text)
    # THEN nothing was rounded
    assert value == {"v": Decimal("0.1000000000000000055511151231257827"), "n": 3}
    assert jsonutil.dumps(value) == '{"n":3,"v":0.1000000000000000055511151231257827}'


def test_equal_numbers_give_equal_text() -> None:
    assert jsonutil.dumps({"a": Decimal("1.50")}) == jsonutil.dumps({"a": Decimal("1.5")})
    assert jsonutil.dumps([Decimal("1E+2"), Decimal("-0.0")]) == "[100,0]"


def test_floats_and_constants_are_refused() -> None:
    with pytest.raises(jsonutil.FloatRefusedError):
        jsonutil.dumps({"a": 0.1})
    for constant in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(ValueError, match="not a JSON number"):
            jsonutil.loads(f'{{"a": {constant}}}')


def test_strings_and_unicode_round_trip() -> None:
    value = {"s": 'quote " and \\ and é and \n', "b": False, "z": None}
    assert jsonutil.loads(jsonutil.dumps(value)) == value


def test_untrusted_json_refuses_a_key_named_twice_at_any_depth() -> None:
    for text, key in [('{"a": 1, "a": 2}', "a"), ('{"x": [{"k": "1", "k": "1"}]}', "k")]:
        with pytest.raises(jsonutil.DuplicateKeyError) as info:
            jsonutil.loads_untrusted(text)
        assert info.value.key == key
    # the same keys in different objects are fine, and trusted loads stay lenient
    assert jsonutil.loads_untrusted('{"a": {"a": 1}}') == {"a": {"a": 1}}
    assert jsonutil.loads('{"a": 1, "a": 2}') == {"a": 2}
