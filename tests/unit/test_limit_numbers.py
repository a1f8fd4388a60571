"""Limits arithmetic is exact up to what DynamoDB stores (38 significant digits, docs/limits.md,
"Numbers"): deciding a cap, the amount path's running total and the grants added to an entitlement never
round (Python's default decimal context keeps 28 digits)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from neruba.domain.entitlement_grants import Grant, granted
from neruba.domain.limit_amounts import Period
from neruba.domain.limit_amounts import decide as decide_amounts
from neruba.domain.limits import decide

CAP_38 = Decimal("9999999999999999999999999999.9999999999")  # 38 significant digits
WHOLE = Decimal("9999999999999999999999999999")
FRACTION = Decimal("0.9999999999")
ULP = Decimal("0.0000000001")  # the cap's last digit


def test_landing_exactly_on_a_38_digit_cap_is_admitted_and_one_ulp_past_is_refused() -> None:
    assert decide(Decimal(0), CAP_38, [WHOLE, FRACTION, ULP]) == [True, True, False]
    assert decide(WHOLE, CAP_38, [FRACTION + ULP, FRACTION]) == [False, True]


def test_a_tiny_event_on_a_full_counter_is_refused() -> None:
    assert decide(Decimal(1000), Decimal(1000), [Decimal("1e-26")]) == [False]
    assert decide(Decimal(10) ** 23, Decimal(10) ** 23, [Decimal("1e-28")]) == [False]
    assert decide(Decimal(999), Decimal(1000), [Decimal(1), Decimal("1e-26")]) == [True, False]


def test_the_amount_path_keeps_the_units_exact() -> None:
    decisions = decide_amounts(Period(), CAP_38, None, [(WHOLE, None), (FRACTION, None), (ULP, None)])
    assert [d.admitted for d in decisions] == [True, True, False]
    assert decisions[-1].after.used == CAP_38


def test_grants_add_up_exactly() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = now + timedelta(days=1)
    grants = [
        Grant("egr_1", "seats", WHOLE, now, later),
        Grant("egr_2", "seats", FRACTION, now, later),
    ]
    assert granted(grants, "seats", now) == CAP_38
