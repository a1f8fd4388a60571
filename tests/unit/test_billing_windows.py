"""Billing windows, catch-up lists, invoice ids and adjustment deltas (no AWS)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from neruba.dal.billing import Adjustment
from neruba.dal.invoices import invoice_record
from neruba.domain.periods import add_interval
from neruba.logic.billing.windows import due_windows, subscription_end, window_at
from neruba.logic.billing.worker import line_deltas

ANCHOR = datetime(2026, 1, 31, 12, tzinfo=UTC)


def test_opening_then_monthly_usage_windows_anchored_at_the_start() -> None:
    # GIVEN a monthly subscription started on Jan 31
    # WHEN its first windows are computed
    opening = window_at("sub_1", ANCHOR, "month", 0, add_interval)
    first = window_at("sub_1", ANCHOR, "month", 1, add_interval)
    second = window_at("sub_1", ANCHOR, "month", 2, add_interval)
    assert opening and first and second

    # THEN the opening is due at the start, usage windows at their end, end-of-month days clamp
    assert (opening.kind, opening.due_at, opening.end) == (
        "opening",
        ANCHOR,
        datetime(2026, 2, 28, 12, tzinfo=UTC),
    )
    assert (first.kind, first.start, first.end) == ("usage", ANCHOR, datetime(2026, 2, 28, 12, tzinfo=UTC))
    assert first.due_at == first.end
    assert second.end == datetime(2026, 3, 31, 12, tzinfo=UTC)
    # AND the opening and the first usage window share a start but not an invoice
    assert opening.invoice_id != first.invoice_id
    assert first.invoice_id == window_at("sub_1", ANCHOR, "month", 1, add_interval).invoice_id  # type: ignore[union-attr]


def test_catch_up_lists_every_due_window_oldest_first() -> None:
    # GIVEN a scheduler that was down for three and a half months
    now = ANCHOR + timedelta(days=105)

    # WHEN the due windows from the opening on are listed
    windows = due_windows("sub_1", ANCHOR, "month", 0, now, add_interval)

    # THEN the opening and three usage windows are due, in order; a limit keeps the oldest
    assert [w.seq for w in windows] == [0, 1, 2, 3]
    assert [w.seq for w in due_windows("sub_1", ANCHOR, "month", 2, now, add_interval)] == [2, 3]
    assert [w.seq for w in due_windows("sub_1", ANCHOR, "month", 0, now, add_interval, limit=2)] == [0, 1]
    assert due_windows("sub_1", ANCHOR, "month", 0, ANCHOR - timedelta(seconds=1), add_interval) == []


def test_windows_stop_at_the_subscription_end() -> None:
    # GIVEN a subscription that ended ten days into its second period
    ends = datetime(2026, 3, 10, tzinfo=UTC)

    # WHEN windows are listed long after
    windows = due_windows("sub_1", ANCHOR, "month", 0, ANCHOR + timedelta(days=400), add_interval, ends)

    # THEN the last window is clipped at the end and nothing follows it
    assert [w.seq for w in windows] == [0, 1, 2]
    assert windows[-1].end == ends == windows[-1].due_at
    assert window_at("sub_1", ANCHOR, "month", 3, add_interval, ends) is None


def test_cancel_at_period_end_ends_with_the_period() -> None:
    sub = {
        "start_at": ANCHOR.isoformat(),
        "interval": "month",
        "cancel_at_period_end": True,
        "canceled_at": datetime(2026, 3, 5, tzinfo=UTC).isoformat(),
    }
    assert subscription_end(sub, add_interval) == datetime(2026, 3, 31, 12, tzinfo=UTC)
    assert subscription_end({"ended_at": "2026-02-01T00:00:00+00:00"}, add_interval) == datetime(
        2026, 2, 1, tzinfo=UTC
    )
    assert subscription_end({"start_at": ANCHOR.isoformat(), "interval": "month"}, add_interval) is None


def _line(quantity: str, amount: int) -> dict[str, object]:
    return {
        "line_id": "usage:calls::0",
        "kind": "usage",
        "meter_code": "calls",
        "quantity": Decimal(quantity),
        "amount_minor": amount,
    }


def test_line_deltas_count_earlier_adjustments() -> None:
    # GIVEN a finalized invoice that billed 10 calls, already corrected once by +2
    invoice = invoice_record(
        {
            "id": "in_1",
            "number": "INV-000001",
            "period_start": "a",
            "period_end": "b",
            "lines": [_line("10", 100)],
        }
    )
    earlier = [
        Adjustment(
            "in_1#usage:calls::0#001",
            "in_1",
            "usage:calls::0",
            "applied",
            {"quantity": Decimal(2), "amount_minor": 20},
        )
    ]

    # WHEN 13 calls are counted now
    deltas = line_deltas(invoice, {"usage:calls::0": _line("13", 130)}, earlier)

    # THEN one more adjustment of +1 call, numbered after the first, referencing the original line
    assert [(d["quantity"], d["amount_minor"], d["line_id"]) for d in deltas] == [
        (Decimal(1), 10, "adjustment:in_1:usage:calls::0:2")
    ]
    assert deltas[0]["references"] == {
        "invoice_id": "in_1",
        "line_id": "usage:calls::0",
        "number": "INV-000001",
    }
    # AND nothing when the counts agree; a line that disappeared is reversed
    assert line_deltas(invoice, {"usage:calls::0": _line("12", 120)}, earlier) == []
    reversed_ = line_deltas(invoice, {}, [])
    assert [(d["quantity"], d["amount_minor"]) for d in reversed_] == [(Decimal(-10), -100)]
