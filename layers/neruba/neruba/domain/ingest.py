"""Ingest rules with no AWS: time window, fingerprints, hour buckets, and what an event adds to a meter.

Example:
    >>> from datetime import datetime, UTC
    >>> hour_bucket(datetime(2026, 1, 31, 23, 59, tzinfo=UTC))
    '2026-01-31T23'
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from neruba.domain.event_rules import EventRule, event_charge
from neruba.domain.numbers import EXACT, MESSAGES, number_problem
from neruba.jsonutil import dumps
from neruba.timefmt import label_start, parse_ts

PropertyValue = str | int | bool | Decimal
# Sums are exact here (never rounded); a batch total DynamoDB cannot store is refused by the write of its
# contribution, and the cell's events are then counted one by one (each storable on its own).


class InvalidPropertyError(ValueError):
    """The event lacks the property its meter aggregates, or it is not a number."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def hour_bucket(at: datetime) -> str:
    """The UTC hour an instant falls in, as ``YYYY-MM-DDTHH``: the stored label (a sort key) of usage
    cells. Answers never show it cut short: ``timefmt.label_z`` writes it in full."""
    return at.astimezone(UTC).isoformat(timespec="hours")[:13]  # the year padded to 4 digits, as %Y is not


def hour_start(bucket: str) -> datetime:
    """The first instant of an hour bucket."""
    return label_start(bucket)


def time_window_error(at: datetime, now: datetime, max_age_days: int, max_future_seconds: int) -> str | None:
    """``timestamp_too_old`` / ``timestamp_in_future`` when ``at`` is outside the accepted window."""
    if at < now - timedelta(days=max_age_days):
        return "timestamp_too_old"
    if at > now + timedelta(seconds=max_future_seconds):
        return "timestamp_in_future"
    return None


def fingerprint(customer_id: str, code: str, timestamp: str | None, properties: Mapping[str, Any]) -> str:
    """A digest of what makes two copies of an event 'the same payload'.

    ``timestamp`` is the one the client sent (None when it let the server default it), so a retry of an
    event sent without timestamp is a duplicate, not a conflict.
    """
    canonical = dumps({"c": customer_id, "m": code, "t": timestamp, "p": dict(properties)})
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def matches_filters(filters: Mapping[str, str], properties: Mapping[str, PropertyValue]) -> bool:
    """True when every filter property equals its value (compared as text)."""
    return all(_as_text(properties.get(key)) == value for key, value in filters.items())


def group_key(group_by: list[str], properties: Mapping[str, PropertyValue]) -> str:
    """The group an event falls in: ``k1=v1|k2=v2`` (empty without group_by; missing values are '')."""
    return "|".join(f"{key}={_as_text(properties.get(key))}" for key in group_by)


def _as_text(value: PropertyValue | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def numeric_value(properties: Mapping[str, PropertyValue], name: str) -> Decimal:
    """The property ``name`` as an exact number (numeric strings are accepted)."""
    if name not in properties:
        raise InvalidPropertyError("missing_property", f"the meter aggregates property {name!r}, absent here")
    value = properties[name]
    if isinstance(value, bool):
        raise InvalidPropertyError("invalid_property", f"property {name!r} is a boolean, not a number")
    number = as_number(value)
    if number is None:
        raise InvalidPropertyError("invalid_property", f"property {name!r} is not a finite number")
    problem = number_problem(number)
    if problem:
        raise InvalidPropertyError(problem, f"property {name!r}: {MESSAGES[problem]}")
    return number


# numeric text: ASCII digits, an optional sign, point and exponent; nothing else (no spaces, underscores,
# other scripts' digits, hexadecimal, NaN or Infinity), so text reads as the number a person sees
NUMERIC_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


def as_number(value: PropertyValue | None) -> Decimal | None:
    """A property value read as a number (numbers and plain numeric text), None for anything else.

    Example:
        >>> as_number("1e3"), as_number(2), as_number("eu"), as_number(True), as_number("NaN")
        (Decimal('1E+3'), Decimal('2'), None, None, None)
        >>> as_number("1_000"), as_number(" 12 "), as_number("\u0661\u0662"), as_number("0x10")
        (None, None, None, None)
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if not isinstance(value, str) or not NUMERIC_TEXT.fullmatch(value):
        return None
    return Decimal(value)


def property_number_problems(properties: Mapping[str, PropertyValue]) -> list[tuple[str, str]]:
    """``(name, code)`` for each property holding a number DynamoDB cannot store (numeric text included:
    any property may be the one a meter aggregates, now or after a replay)."""
    problems = []
    for name, value in properties.items():
        number = as_number(value)
        problem = number_problem(number) if number is not None else None
        if problem:
            problems.append((name, problem))
    return problems


@dataclass(slots=True)
class GroupTotals:
    """What a set of events adds to one (customer, meter, hour, group) aggregate."""

    count: int = 0
    total: Decimal = Decimal(0)
    maximum: Decimal | None = None
    minimum: Decimal | None = None
    weighted: Decimal = Decimal(0)  # weighted_sum: sum of value x seconds from the hour's start
    latest_at: str | None = None
    latest: Decimal | None = None
    uniques: set[str] = field(default_factory=set)
    transaction_ids: list[str] = field(default_factory=list)
    # per-event rules of the meter (domain.event_rules): digest -> exact sum of the events' charges, and
    # how many events were priced by it
    event_sums: dict[str, Decimal] = field(default_factory=dict)
    event_counts: dict[str, int] = field(default_factory=dict)

    def add(
        self,
        transaction_id: str,
        aggregation: str,
        at: str,
        value: Decimal | str | None,
        rules: Mapping[str, EventRule] | None = None,
    ) -> None:
        """Fold one accepted event in (``value`` per the meter: number, unique text, or None for count;
        ``rules`` the meter's per-event rules by digest, priced on a sum meter's number)."""
        self.count += 1
        self.transaction_ids.append(transaction_id)
        if rules and aggregation == "sum" and isinstance(value, Decimal):
            with localcontext(EXACT):
                for name, rule in rules.items():
                    self.event_sums[name] = self.event_sums.get(name, Decimal(0)) + event_charge(rule, value)
                    self.event_counts[name] = self.event_counts.get(name, 0) + 1
        if aggregation == "unique_count" and value is not None:
            self.uniques.add(str(value))
        elif isinstance(value, Decimal):
            if aggregation in ("sum", "average"):  # an average is its sum over the count
                with localcontext(EXACT):
                    self.total += value
            elif aggregation == "weighted_sum":  # a change of level: its sum and its time-weighted sum
                with localcontext(EXACT):
                    self.total += value
                    self.weighted += value * seconds_into_hour(at)
            elif aggregation == "max":
                self.maximum = value if self.maximum is None else max(self.maximum, value)
            elif aggregation == "min":
                self.minimum = value if self.minimum is None else min(self.minimum, value)
            elif aggregation == "latest" and (
                self.latest_at is None or (at, str(value)) > (self.latest_at, "")
            ):
                self.latest_at, self.latest = at, value


def seconds_into_hour(at: str) -> Decimal:
    """Exact seconds from the start of its UTC hour to the instant ``at`` (ISO 8601, microseconds).

    Example:
        >>> seconds_into_hour("2026-01-01T10:02:03.5Z")
        Decimal('123.500000')
    """
    moment = parse_ts(at)
    return Decimal(moment.minute * 60 + moment.second) + Decimal(moment.microsecond).scaleb(-6)


def meter_value(
    aggregation: str,
    field_name: str | None,
    properties: Mapping[str, PropertyValue],
    *,
    allow_negative: bool = False,
) -> Decimal | str | None:
    """The value an event contributes to a meter of ``aggregation`` over ``field_name``.

    A negative number is refused (``negative_value``) unless the meter allows negative values.
    """
    if aggregation == "count" or field_name is None:
        return None
    if aggregation == "unique_count":
        if field_name not in properties:
            raise InvalidPropertyError(
                "missing_property", f"the meter counts unique {field_name!r}, absent here"
            )
        return _as_text(properties[field_name])
    number = numeric_value(properties, field_name)
    if number < 0 and not allow_negative:
        raise InvalidPropertyError(
            "negative_value",
            f"property {field_name!r} is negative ({number}) and its meter does not allow negative values",
        )
    return number
