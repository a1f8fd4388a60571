"""A limited meter's period counter is exact to the 38 digits DynamoDB stores (docs/limits.md, "Exact
limit counters"): an event the smallest step past the cap is refused, usage and remaining read back
exactly, and an event whose addition the counter cannot hold exactly is parked, never rounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from neruba.logic.limits.settings import get_limits
from tests.functional.ingest.conftest import ev, event_of
from tests.functional.ingest.test_limits import _limits, _statuses

HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def _tok(tx: str, value: str, second: int) -> dict[str, Any]:
    at = (HOUR + timedelta(seconds=second)).isoformat()
    return ev(tx, code="tokens", timestamp=at, properties={"tokens": value, "model": "a"})


def _row(meter: str = "tokens") -> dict[str, Any]:
    rows = {row["meter_code"]: row for row in get_limits("acme")["meters"]}
    return rows[meter]


def test_a_tiny_event_on_a_full_counter_is_refused_and_the_counter_reads_exactly(
    enqueue: Any, process: Any, read: Any, catalog: Any
) -> None:
    # GIVEN a cap of 1000 tokens
    _limits(tokens={"hard_cap": "1000"})
    # WHEN 1000 tokens, then 1e-26 more, arrive
    enqueue(_tok("a", "1000", 1), _tok("b", "0.00000000000000000000000001", 2))
    process()
    # THEN the second one is refused: the counter stays on the cap
    assert _statuses(read, "acme", ["a", "b"]) == {"a": "accepted", "b": "over_limit"}
    assert (_row()["usage"], _row()["remaining"]) == ("1000", "0")


def test_a_cap_of_ten_to_the_23_takes_no_1e_minus_28_past_it(
    enqueue: Any, process: Any, read: Any, catalog: Any
) -> None:
    _limits(tokens={"hard_cap": "100000000000000000000000"})
    enqueue(_tok("a", "1e23", 1), _tok("b", "1e-28", 2))
    process()
    assert _statuses(read, "acme", ["a", "b"]) == {"a": "accepted", "b": "over_limit"}
    assert _row()["usage"] == "100000000000000000000000"


def test_a_38_digit_counter_lands_exactly_on_the_cap_and_one_ulp_past_is_refused(
    enqueue: Any, process: Any, read: Any, catalog: Any
) -> None:
    # GIVEN the widest cap a customer may set (24 whole digits), and a first event of 38 significant
    # digits just under it
    cap = "999999999999999999999999"
    _limits(tokens={"hard_cap": cap})
    enqueue(_tok("a", "999999999999999999999998.99999999999999", 1))
    process()
    # THEN the counter holds all 38 digits and the remaining is exact
    assert (_row()["usage"], _row()["remaining"]) == (
        "999999999999999999999998.99999999999999",
        "0.00000000000001",
    )
    # WHEN the smallest step past the cap arrives, then the step that lands exactly on it
    enqueue(_tok("b", "0.00000000000002", 2))
    process()
    enqueue(_tok("c", "0.00000000000001", 3))
    process()
    # THEN the one past is refused and the one landing on the cap counts
    assert _statuses(read, "acme", ["a", "b", "c"]) == {"a": "accepted", "b": "over_limit", "c": "accepted"}
    assert (_row()["usage"], _row()["remaining"]) == (cap, "0")


def test_remaining_is_exact_under_a_wide_cap(enqueue: Any, process: Any, read: Any, catalog: Any) -> None:
    _limits(tokens={"hard_cap": "999999999999999999999999.999999"})
    enqueue(_tok("a", "0.0000005", 1))
    process()
    assert (_row()["usage"], _row()["remaining"]) == ("0.0000005", "999999999999999999999999.9999985")


def test_an_event_the_counter_cannot_hold_exactly_is_parked_not_rounded(
    enqueue: Any, process: Any, read: Any, catalog: Any
) -> None:
    # GIVEN a counter at 1e23 under a higher cap
    _limits(tokens={"hard_cap": "200000000000000000000000"})
    enqueue(_tok("a", "1e23", 1))
    process()
    # WHEN an event would make the counter need more than 38 significant digits
    enqueue(_tok("b", "1e-28", 2))
    process()
    # THEN that event is parked failed with a reason, and the counter is unchanged
    body = event_of(read, "b")
    assert (body["status"], body["reason"]) == ("failed", "write_refused"), body
    assert _row()["usage"] == "100000000000000000000000"
    assert _statuses(read, "acme", ["a"]) == {"a": "accepted"}
