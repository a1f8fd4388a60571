"""What a stored number may be: DynamoDB's number contract, with no AWS.

DynamoDB keeps a number exactly or refuses it: at most 38 significant digits (leading and trailing zeros
do not count), and zero or a magnitude from 1E-130 up to 9.99...E+125 (38 nines). Everything we store,
and every sum we add to a stored number, follows this rule, so a value is refused where it comes in
(the API, the worker) with a reason instead of failing a write later.

Example:
    >>> number_problem(Decimal("1e400")), number_problem(Decimal("1.50")), number_problem(10**38 + 1)
    ('number_out_of_range', None, 'number_too_precise')
    >>> exact_sum([Decimal("1e30"), Decimal("0.00000001")])
    Decimal('1000000000000000000000000000000.00000001')
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Context, Decimal, Inexact, InvalidOperation, Rounded, localcontext

MAX_DIGITS = 38
MIN_EXPONENT = -130  # the smallest magnitude is 1E-130
MAX_EXPONENT = 126  # magnitudes stay below 1E+126
LARGEST = Decimal((0, (9,) * MAX_DIGITS, MAX_EXPONENT - MAX_DIGITS))

# Wide enough for any sum of storable numbers (digits from 1E-168 to 1E+126) and refusing to round,
# so a sum is exact or raises.
EXACT = Context(prec=400, Emax=10_000, Emin=-10_000, traps=[Inexact, Rounded, InvalidOperation])

MESSAGES = {
    "number_out_of_range": "a number must be zero or have a magnitude from 1E-130 to below 1E+126",
    "number_too_precise": f"a number may have at most {MAX_DIGITS} significant digits",
}


class NumberNotStorableError(ValueError):
    """A number outside the storable range or precision."""

    def __init__(self, code: str, value: object, where: str = "") -> None:
        self.code = code
        super().__init__(f"{where + ': ' if where else ''}{value} is not storable ({MESSAGES[code]})")


def significant(value: Decimal) -> tuple[tuple[int, ...], int]:
    """The digits of a finite non-zero number with trailing zeros dropped, and the exponent of the last.

    Example:
        >>> significant(Decimal("120.500"))
        ((1, 2, 0, 5), -1)
    """
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    kept = list(digits)
    while len(kept) > 1 and kept[-1] == 0:
        kept.pop()
        exponent += 1
    while len(kept) > 1 and kept[0] == 0:
        kept.pop(0)
    return tuple(kept), exponent


def number_problem(value: int | Decimal) -> str | None:
    """``number_out_of_range`` / ``number_too_precise`` when DynamoDB cannot store ``value`` exactly."""
    number = Decimal(value) if isinstance(value, int) else value
    if not number.is_finite():
        return "number_out_of_range"
    if number.is_zero():
        return None
    digits, exponent = significant(number)
    if len(digits) > MAX_DIGITS:
        return "number_too_precise"
    adjusted = exponent + len(digits) - 1  # the exponent of the leading digit
    if adjusted < MIN_EXPONENT or adjusted >= MAX_EXPONENT:
        return "number_out_of_range"
    return None


def check_storable(value: int | Decimal, where: str = "") -> None:
    """Raise :class:`NumberNotStorableError` unless ``value`` is storable."""
    problem = number_problem(value)
    if problem:
        raise NumberNotStorableError(problem, value, where)


def canonical_text(value: int | Decimal) -> str:
    """The storable text of a number: plain digits, no exponent, no trailing zeros (``1E+3`` -> ``1000``)."""
    if isinstance(value, int):
        return str(value)
    if value.is_zero():
        return "0"
    digits, exponent = significant(value)
    return format(Decimal((value.as_tuple().sign, digits, exponent)), "f")


def exact_sum(values: Iterable[Decimal | int]) -> Decimal:
    """The exact sum (never rounded; raises ``decimal.Inexact`` only for numbers far outside the range)."""
    total = Decimal(0)
    with localcontext(EXACT):
        for value in values:
            total += value
    return total


def exact_difference(value: Decimal | int, taken: Decimal | int) -> Decimal:
    """``value - taken``, exact as :func:`exact_sum` (Python's ``-`` and unary minus round to the
    context's 28 digits).

    Example:
        >>> exact_difference(Decimal("999999999999999999999999.999999"), Decimal("0.0000005"))
        Decimal('999999999999999999999999.9999985')
    """
    return exact_sum([value, Decimal(taken).copy_negate()])
