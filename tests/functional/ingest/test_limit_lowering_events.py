"""Events that lower a meter's usage (a ``sum`` meter with ``allow_negative``) above a lowered hard cap.

Found over HTTP: cap 10, events +8, -3, +2 (usage 7), cap lowered to 5; an event of -1 was refused
``over_limit`` because the rule applied was "usage after <= cap". The rule (docs/limits.md, "Events that
lower the usage"): an event with a negative value always fits; an event that does not lower the usage
fits when the usage after it is at most the cap (so above the cap a zero-valued event is refused). The
amend check applies the same rule to the corrected copy."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.functional.ingest.conftest import ev, event_of
from tests.functional.ingest.test_event_voids import AT, admin, body

__all__ = ["admin"]


@pytest.fixture
def delta(catalog: Any) -> str:
    from neruba.models.catalog import Meter

    catalog.create_meter(
        Meter(code="seats_delta", name="Seats", aggregation="sum", field="d", allow_negative=True)
    )
    return "seats_delta"


def _cap(cap: str) -> None:
    from neruba.logic.idempotency import Actor
    from neruba.logic.limits.settings import put_limits
    from neruba.models.limits import UsageLimitsIn

    limits = UsageLimitsIn.model_validate({"meters": [{"meter_code": "seats_delta", "hard_cap": cap}]})
    put_limits("acme", limits, None, Actor())


def _usage() -> Decimal:
    from neruba.logic.limits.settings import get_limits

    rows = {row["meter_code"]: row for row in get_limits("acme")["meters"]}
    return Decimal(rows["seats_delta"]["usage"])


def _d(tx: str, value: str) -> dict[str, Any]:
    return ev(tx, code="seats_delta", timestamp=AT, properties={"d": value})


def test_a_negative_event_above_a_lowered_cap_fits_and_a_zero_one_is_refused(
    send: Any, process: Any, read: Any, delta: str
) -> None:
    # GIVEN cap 10 and events +8, -3, +2 (usage 7), then the cap lowered to 5
    _cap("10")
    send(_d("a", "8"), _d("b", "-3"), _d("c", "2"))
    process()
    assert _usage() == 7
    _cap("5")
    # WHEN an event of -1, one of 0 and one of +1 arrive
    send(_d("d", "-1"))
    process()
    send(_d("e", "0"), _d("f", "1"))
    process()
    # THEN the lowering event is counted; the zero and positive ones are refused over_limit
    assert event_of(read, "d")["status"] == "accepted"
    assert event_of(read, "e")["status"] == "over_limit"
    assert event_of(read, "f")["status"] == "over_limit"
    assert _usage() == 6


def test_a_zero_event_landing_on_the_cap_fits(send: Any, process: Any, read: Any, delta: str) -> None:
    # GIVEN usage exactly on the cap
    _cap("5")
    send(_d("a", "5"))
    process()
    # WHEN a zero-valued event arrives
    send(_d("b", "0"))
    process()
    # THEN it fits (the usage after it is the cap)
    assert event_of(read, "b")["status"] == "accepted"
    assert _usage() == 5


def test_an_amend_to_a_negative_value_above_a_lowered_cap_is_accepted(
    send: Any, process: Any, read: Any, admin: Any, delta: str
) -> None:
    # GIVEN usage 9 under cap 10, then the cap lowered to 2
    _cap("10")
    send(_d("a", "4"), _d("b", "5"))
    process()
    _cap("2")
    # WHEN event a is amended to -2 (its copy lowers the usage)
    status, answer = admin("amend", "a", body(properties={"d": "-2"}))
    # THEN the amend is accepted and the usage falls to 3
    assert status == 200, answer
    process()
    assert _usage() == 3


def test_a_void_leaving_the_usage_below_zero_keeps_the_counter_exact(
    send: Any, process: Any, read: Any, admin: Any, delta: str
) -> None:
    # GIVEN events +8 and -5 (usage 3) under cap 10, then the cap lowered to 5
    _cap("10")
    send(_d("a", "8"), _d("b", "-5"))
    process()
    _cap("5")
    # WHEN event a is voided (the usage is -5)
    status, answer = admin("void", "a", body())
    assert status == 200, answer
    # THEN the counter says -5, not 0, and an event of +7 (usage 2) fits
    assert _usage() == -5
    send(_d("c", "7"))
    process()
    assert event_of(read, "c")["status"] == "accepted"
    assert _usage() == 2


def test_an_amend_lowering_the_usage_of_a_net_negative_meter_is_accepted(
    send: Any, process: Any, read: Any, admin: Any, delta: str
) -> None:
    # GIVEN events +8 and -5 (usage 3), then the cap lowered to 5
    _cap("10")
    send(_d("a", "8"), _d("b", "-5"))
    process()
    _cap("5")
    # WHEN event a is amended to 7 (the usage after it is -5 + 7 = 2)
    status, answer = admin("amend", "a", body(properties={"d": "7"}))
    # THEN it is accepted and the usage falls to 2
    assert status == 200, answer
    process()
    assert _usage() == 2
