"""Field patterns and annotated types shared by the models and the route parameters.

They live apart from :mod:`neruba.models.catalog` so that a route or model that only needs a pattern does
not build the catalog's pydantic models at import (a cold start pays for every model it builds).

Example:
    >>> import re
    >>> bool(re.match(CODE_PATTERN, "api_calls"))
    True
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from neruba.domain.money import is_supported_currency
from neruba.domain.numbers import canonical_text
from neruba.timefmt import parse_input_time

CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
EXTERNAL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"
TIMEZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$"  # IANA names: UTC, Europe/Paris
AUDIT_PARTITION_PATTERN = (
    r"^(_global|_stripe|[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127})$"  # a customer, _global or _stripe
)


# The validation context of a stored document read back (``Model.model_validate(doc, context=STORED)``):
# text stored before a rule on free text existed is read as it was written, never refused on the way out.
STORED = {"stored": True}

# Invisible format characters that reorder or hide what a reader sees (a name shown reversed on a console or
# an invoice): the bidirectional embeddings, overrides and isolates, the left-to-right, right-to-left and
# Arabic letter marks, and the byte-order mark. The zero-width joiners stay: scripts and emoji need them.
_HIDDEN_FORMAT = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\ufeff")


def _one_line(value: str, info: ValidationInfo) -> str:
    """Refuse a control character (NUL, tab, escape, DEL, C1, a bidirectional or invisible format character)
    or a line break of any kind (CR, LF, the Unicode line and paragraph separators): free text is shown as
    written, on one line, in consoles, logs, invoices and CSVs."""
    if isinstance(info.context, dict) and info.context.get("stored"):
        return value
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _HIDDEN_FORMAT for ch in value):
        raise ValueError("must not contain control characters or line breaks")
    return value


def _not_blank(value: str, info: ValidationInfo) -> str:
    """Refuse a required text made of spaces only (``" "`` as a reason, a ticket or a name): it passes a
    minimum length and says nothing. Checked after ``_one_line``; stored text is read as it was written."""
    if isinstance(info.context, dict) and info.context.get("stored"):
        return value
    if not value.strip():
        raise ValueError("must not be blank (spaces only)")
    return value


# Free text a caller writes (a name, a description, a reason, a ticket): printable characters on one line.
# Each type checks its length first, so a too short or too long text is refused as a string's length
# (``string_too_short``), and then its characters; a text that must be given (a minimum length) must also
# not be spaces only (``_not_blank``). Build a new one the same way (bounds, then the checks).
PlainText = Annotated[str, AfterValidator(_one_line)]
Name = Annotated[
    str, Field(min_length=1, max_length=256), AfterValidator(_one_line), AfterValidator(_not_blank)
]  # customer, meter, plan
Description = Annotated[str, Field(max_length=500), AfterValidator(_one_line)]  # a webhook endpoint's
# an invoice line's (a blank one is the one-off charge's own 400 description_required, docs/api.md)
LineDescription = Annotated[str, Field(min_length=1), AfterValidator(_one_line)]
Reason = Annotated[
    str, Field(min_length=1, max_length=500), AfterValidator(_one_line), AfterValidator(_not_blank)
]  # why (audited)
AuditedReason = Annotated[
    str, Field(min_length=3, max_length=500), AfterValidator(_one_line), AfterValidator(_not_blank)
]  # runs, replays
TicketText = Annotated[str, Field(max_length=128), AfterValidator(_one_line)]
Ticket = Annotated[TicketText | None, Field(default=None)]  # the operator's ticket reference
RequiredTicket = Annotated[
    str, Field(min_length=1, max_length=128), AfterValidator(_one_line), AfterValidator(_not_blank)
]  # event voids
StaticValue = Annotated[str, Field(max_length=256), AfterValidator(_one_line)]  # a static entitlement's
CouponName = Annotated[
    str, Field(min_length=1, max_length=200), AfterValidator(_one_line), AfterValidator(_not_blank)
]
TaxName = Annotated[
    str, Field(min_length=1, max_length=100), AfterValidator(_one_line), AfterValidator(_not_blank)
]  # a tax rate's
Memo = Annotated[str, Field(max_length=500), AfterValidator(_one_line)]  # shown on a credit note

MAX_METADATA = 50
METADATA_KEY_MAX = 40
METADATA_VALUE_MAX = 500
Metadata = dict[
    Annotated[str, Field(min_length=1, max_length=METADATA_KEY_MAX)],
    Annotated[str, Field(max_length=METADATA_VALUE_MAX)],
]
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def _plain_decimal(value: object, info: ValidationInfo) -> object:
    """Refuse a decimal written as text in any form but plain ASCII digits with an optional sign and
    fraction: no spaces, underscores, exponents, other scripts' digits, ``+``, ``.5`` or ``5.``."""
    if isinstance(info.context, dict) and info.context.get("stored"):
        return value
    if isinstance(value, str) and not _DECIMAL_TEXT.fullmatch(value):
        raise ValueError("must be a plain decimal such as 12 or 0.5 (ASCII digits, no exponent or spaces)")
    return value


PlainDecimal = BeforeValidator(_plain_decimal)
"""The text rule of every decimal the API takes (prices, quantities, rates, percentages, free units): put it
in the field's ``Annotated`` so that no decimal field is left with the looser parsing of ``Decimal``."""

_INTEGER_TEXT = re.compile(r"-?[0-9]+")


def _plain_integer(value: object) -> object:
    """Refuse an integer written as text in any form but plain ASCII digits with an optional ``-``: no
    spaces, ``+``, underscores, fractions (``5.0``) or other scripts' digits, which ``int`` would read."""
    if isinstance(value, str) and not _INTEGER_TEXT.fullmatch(value):
        raise ValueError("must be a whole number in plain digits such as 20 (no spaces, +, _ or point)")
    return value


PlainInteger = BeforeValidator(_plain_integer)
"""The text rule of every integer the API reads from text (query and path parameters, which always arrive
as text; JSON integers are ``StrictInt``): put it in the parameter's ``Annotated`` (``api.params.Limit``)."""


class AsWritten:
    """The size rule of a decimal the API takes, counted on the number **as written**: at most ``places``
    digits after the point, trailing zeros included (``"1.0000000"`` has 7 decimal places, so a quantity
    refuses it as it refuses ``"1.0000001"``), and at most ``digits - places`` before it (leading zeros do
    not count) (docs/api.md, "Decimal places are counted as written"). Every decimal field of a request model
    carries it in an ``AfterValidator`` (a unit test walks the models), so no field counts another way.

    Example:
        >>> AsWritten(digits=30, places=6)(Decimal("12.500000"))
        Decimal('12.500000')
    """

    def __init__(self, *, digits: int, places: int) -> None:
        self.digits = digits
        self.places = places

    def __call__(self, value: Decimal) -> Decimal:
        _, digits, exponent = value.as_tuple()
        if not isinstance(exponent, int):
            return value  # NaN and infinities are refused before (allow_inf_nan=False)
        places = max(0, -exponent)
        whole = len(digits) + exponent if exponent >= 0 else max(0, len(digits) - places)
        if places > self.places:
            raise PydanticCustomError(
                "decimal_max_places",
                "Decimal input should have no more than {decimal_places} decimal places",
                {"decimal_places": self.places},
            )
        if whole > self.digits - self.places:
            raise PydanticCustomError(
                "decimal_whole_digits",
                "Decimal input should have no more than {whole_digits} digits before the decimal point",
                {"whole_digits": self.digits - self.places},
            )
        return value


AsText = PlainSerializer(canonical_text, return_type=str, when_used="json")
"""How every decimal of a request model is stored and answered: canonical text (``domain.numbers``), no
exponent and no trailing zeros (``"1e2"`` -> ``"100"``, ``"0.300"`` -> ``"0.3"``)."""
Price = Annotated[
    Decimal,
    Field(ge=0, allow_inf_nan=False),
    PlainDecimal,
    AfterValidator(AsWritten(digits=30, places=12)),
    AsText,
]
Quantity = Annotated[
    Decimal,
    Field(gt=0, allow_inf_nan=False),
    PlainDecimal,
    AfterValidator(AsWritten(digits=30, places=6)),
    AsText,
]


def _decimal_text(value: object, info: ValidationInfo) -> object:
    """Refuse anything but text where a decimal must be written as text: a JSON number (the API reads
    JSON fractions as ``Decimal``, so those are refused too) or a boolean. The text is what is checked
    (``PlainDecimal``) and kept."""
    if isinstance(info.context, dict) and info.context.get("stored"):
        return value
    if not isinstance(value, str):
        raise ValueError('must be a decimal written as text such as "12" or "0.5", not a JSON number')
    return value


DecimalText = BeforeValidator(_decimal_text)
"""The rule of a decimal that must arrive as text (every decimal of a limits body, docs/limits.md): put it
in the field's ``Annotated`` next to ``PlainDecimal``."""

QuantityText = Annotated[
    Decimal,
    Field(gt=0, allow_inf_nan=False),
    PlainDecimal,
    DecimalText,
    AfterValidator(AsWritten(digits=30, places=6)),
    AsText,
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}, mode="validation"),
]
"""A ``Quantity`` taken as plain decimal text only (caps, alert levels, allowances and grants of limits)."""


def _known_currency(value: str) -> str:
    value = value.upper()
    if not is_supported_currency(value):
        raise ValueError(f"unsupported currency {value!r}")
    return value


Currency = Annotated[str, Field(min_length=3, max_length=3), AfterValidator(_known_currency)]


def _representable(value: datetime) -> datetime:
    """A time whose UTC instant a datetime holds (an offset can push year 1 or 9999 out of range)."""
    if value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except (OverflowError, ValueError):
            raise ValueError("the time in UTC must fall between the years 1 and 9999") from None
    return value


def _input_time(value: object) -> object:
    """Text must be RFC 3339 (``timefmt.parse_input_time``); numbers are refused (no Unix seconds)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return parse_input_time(value)
    raise ValueError("must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z")


# Every time the API takes (query or body): RFC 3339 text, and the time's UTC instant must exist, so no
# later conversion fails.
Instant = Annotated[datetime, BeforeValidator(_input_time), AfterValidator(_representable)]
AwareInstant = Annotated[AwareDatetime, BeforeValidator(_input_time), AfterValidator(_representable)]
