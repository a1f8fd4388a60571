"""The overlap rule of subscriptions (domain.overlap): what a subscription claims, and when two clash."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from neruba.domain.overlap import claims, first_overlap

CHARGES = {"pro": ["api_calls"], "plus": ["api_calls", "storage"], "store": ["storage"], "flat": []}


def _meters(code: str, _version: int) -> list[str]:
    return CHARGES[code]


def _at(day: int, month: int = 1) -> datetime:
    return datetime(2026, month, day, tzinfo=UTC)


def _sub(sid: str, *phases: tuple[str, datetime, datetime | None]) -> dict[str, Any]:
    return {
        "id": sid,
        "phases": [
            {
                "plan_code": code,
                "plan_version": 1,
                "start_at": start.isoformat(),
                "end_at": end and end.isoformat(),
            }
            for code, start, end in phases
        ],
    }


def test_each_phase_claims_its_meters_and_plan_until_the_end() -> None:
    sub = _sub("a", ("pro", _at(1), _at(10)), ("plus", _at(10), None))
    found = [(c.key, c.start.day, c.end and c.end.day) for c in claims(sub, _meters, end=_at(20))]
    assert found == [
        ("meter:api_calls", 1, 10),
        ("plan:pro", 1, 10),
        ("meter:api_calls", 10, 20),
        ("meter:storage", 10, 20),
        ("plan:plus", 10, 20),
    ]


def test_a_phase_after_the_end_claims_nothing() -> None:
    sub = _sub("a", ("pro", _at(1), _at(10)), ("plus", _at(10), None))
    assert {c.plan_code for c in claims(sub, _meters, end=_at(5))} == {"pro"}


def test_same_meter_intersecting_times_overlap_and_touching_ones_do_not() -> None:
    first = claims(_sub("a", ("pro", _at(1), None)), _meters, end=_at(1, 2))
    touching = claims(_sub("b", ("plus", _at(1, 2), None)), _meters, end=None)
    inside = claims(_sub("c", ("plus", _at(31), None)), _meters, end=None)
    other_meter = claims(_sub("d", ("store", _at(5), None)), _meters, end=None)
    assert first_overlap(touching, first) is None
    assert first_overlap(other_meter, first) is None
    clash = first_overlap(inside, first)
    assert clash is not None and (clash[1].subscription_id, clash[0].meter_code) == ("a", "api_calls")


def test_the_same_plan_overlaps_even_without_meters_but_a_subscription_never_clashes_with_itself() -> None:
    flat = claims(_sub("a", ("flat", _at(1), None)), _meters, end=None)
    again = claims(_sub("b", ("flat", _at(3), None)), _meters, end=None)
    clash = first_overlap(again, flat)
    assert clash is not None and clash[0].key == "plan:flat" and clash[0].meter_code is None
    assert first_overlap(flat, flat) is None
