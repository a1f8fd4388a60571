"""JSON without floats: numbers with a fraction parse as Decimal, Decimals print exactly.

``dumps`` is canonical (sorted keys, no spaces, normalised numbers), so equal payloads give equal
text and equal fingerprints (``1.50`` and ``1.5`` are the same number).

Example:
    >>> loads('{"b": 1.50, "a": [1, true, null]}')
    {'b': Decimal('1.50'), 'a': [1, True, None]}
    >>> dumps({"b": Decimal("1.50"), "a": [1, True, None]})
    '{"a":[1,true,null],"b":1.5}'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


class FloatRefusedError(TypeError):
    """A float reached a path that must stay exact."""


class DuplicateKeyError(ValueError):
    """An object of untrusted JSON names the same key twice (parsers disagree on which value wins)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key = key


class NonFiniteNumberError(json.JSONDecodeError):
    """Untrusted JSON holds ``NaN``, ``Infinity`` or ``-Infinity`` (not JSON numbers); ``key`` is the
    member that holds it (None at the top level)."""

    def __init__(self, constant: str, key: str | None) -> None:
        where = f"'{key}' is" if key is not None else "the body is"
        super().__init__(f"{where} {constant}, which is not a JSON number", constant, 0)
        self.constant, self.key = constant, key


@dataclass(frozen=True, slots=True)
class _Constant:
    """What ``NaN``/``Infinity`` parse to until the member holding it is known."""

    name: str


def _constant_in(value: Any) -> _Constant | None:
    if isinstance(value, _Constant):
        return value
    if isinstance(value, list):
        for item in value:
            if (found := _constant_in(item)) is not None:
                return found
    return None


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    for key, value in pairs:
        if (found := _constant_in(value)) is not None:
            raise NonFiniteNumberError(found.name, key)
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(key)
            seen.add(key)
    return result


def loads(text: str | bytes) -> Any:
    """Parse JSON, turning every non-integer number into a Decimal."""
    return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)


def loads_untrusted(text: str | bytes) -> Any:
    """``loads`` for text from outside (request bodies, cursors, webhooks): an object naming a key twice
    raises DuplicateKeyError; whatever else cannot be parsed raises ``json.JSONDecodeError``, including
    nesting deeper than the parser's recursion limit and integers of more digits than Python converts
    (which ``json.loads`` raises as RecursionError and ValueError).

    Example:
        >>> loads_untrusted("[" * 100_000 + "]" * 100_000)
        Traceback (most recent call last):
        ...
        json.decoder.JSONDecodeError: unparseable JSON (RecursionError): line 1 column 1 (char 0)
        >>> loads_untrusted('{"a": 1, "a": 2}')
        Traceback (most recent call last):
        ...
        neruba.jsonutil.DuplicateKeyError: duplicate key 'a'
    """
    try:
        parsed = json.loads(
            text, parse_float=Decimal, parse_constant=_Constant, object_pairs_hook=_unique_object
        )
    except (json.JSONDecodeError, DuplicateKeyError):
        raise
    except (RecursionError, ValueError) as exc:
        document = text if isinstance(text, str) else ""
        raise json.JSONDecodeError(f"unparseable JSON ({type(exc).__name__})", document, 0) from exc
    if (found := _constant_in(parsed)) is not None:
        raise NonFiniteNumberError(found.name, None)
    return parsed


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)


def number_text(value: int | Decimal) -> str:
    """The canonical text of a number (no exponent, no trailing zeros)."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise TypeError(f"not an exact number: {value!r}")
    if isinstance(value, int):
        return str(value)
    if not value.is_finite():
        raise ValueError("NaN and Infinity are not JSON numbers")
    if value.is_zero():
        return "0"
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    kept = list(digits)
    while exponent < 0 and kept[-1] == 0:  # exact: no context rounding, unlike Decimal.normalize()
        kept.pop()
        exponent += 1
    return format(Decimal((sign, tuple(kept), exponent)), "f")


def decimals_as_text(value: Any) -> Any:
    """``value`` with every Decimal replaced by its canonical text (:func:`number_text`); ints, strings
    and the rest unchanged. API answers go through it: a decimal quantity, price or fraction leaves as a
    string (``"0.5"``, ``"12"``), like money amounts leave as integer minor units.

    Example:
        >>> decimals_as_text({"quantity": Decimal("11.50"), "n": 3, "rows": [Decimal("2")]})
        {'quantity': '11.5', 'n': 3, 'rows': ['2']}
    """
    if isinstance(value, Decimal):
        return number_text(value)
    if isinstance(value, dict):
        return {key: decimals_as_text(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [decimals_as_text(item) for item in value]
    return value


def dumps(value: Any) -> str:
    """Serialise to canonical JSON; raises FloatRefusedError on any float."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def _write(value: Any, out: list[str]) -> None:
    if value is None or isinstance(value, bool | str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, float):
        raise FloatRefusedError("floats are not allowed here; use Decimal")
    elif isinstance(value, int | Decimal):
        out.append(number_text(value))
    elif isinstance(value, dict):
        out.append("{")
        for index, key in enumerate(sorted(value)):
            if index:
                out.append(",")
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot serialise {type(value).__name__}")
