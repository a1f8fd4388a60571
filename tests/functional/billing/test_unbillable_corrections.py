"""No difference is ever applied against a line rated 0 because it is unbillable (docs/billing.md,
"Corrections against an unbillable line"): a window that billed 100 and is re-rated with a quantity over
the line limit keeps its 100. A rerun and a backfill commit are refused with 409
``correction_unbillable`` (nothing written), the backfill preview shows the line withheld, the late-event
look-back and the ``corrections`` sweep leave the invoice as billed and count the withheld line.

The "basic" plan (0.10 per call, daily windows); an hour's count set to 2 x 10^19 calls (a line of
2 x 10^18 dollars) stands for a runaway event that reached an invoiced window late."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.billing.backfill_support import (
    act,
    billed_days,
    calls,
    events,
    open_backfill,
    read,
    scope,
)
from tests.functional.billing.conftest import START, World, assert_books_agree, subscribe_real
from tests.functional.billing.helpers import billing_state, day, schedule, work
from tests.support.api import api_event, call

HUGE = 2 * 10**19  # calls: 2 x 10^20 minor units at 0.10, over the 10^18 line limit


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float]]:
    """The metrics the code under test adds (name, value)."""
    from neruba.observability import metrics

    seen: list[tuple[str, float]] = []
    real = metrics.add_metric

    def add_metric(name: str, unit: Any, value: float, **kwargs: Any) -> None:
        seen.append((name, value))
        real(name=name, unit=unit, value=value, **kwargs)

    monkeypatch.setattr(metrics, "add_metric", add_metric)
    return seen


def _rerun(invoice_id: str, key: str) -> tuple[int, Any]:
    from functions.billing_api.app import lambda_handler

    event = api_event(
        "POST",
        f"/admin/invoices/{invoice_id}/rerun",
        body={"reason": "late usage"},
        path_parameters={"invoice_id": invoice_id},
        headers={"Idempotency-Key": key},
    )
    status, body, _ = call(lambda_handler, event)
    return status, body


def _credited(world: World, invoice_id: str) -> int:
    """What credit notes took off the invoice."""
    stored = world.ctx.invoices.get(invoice_id)
    assert stored is not None
    return int(stored.document.get("credited_minor") or 0)


def _adjustments(world: World) -> list[Any]:
    (sub,) = world.subscriptions
    return world.ctx.billing.adjustments(sub["id"])


def test_a_rerun_against_an_unbillable_re_rating_is_refused_and_writes_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN day 0 billed 10 calls (100), then a runaway count reaching its window
    billed_days(world, monkeypatch, [10])
    (first,) = [i for i in world.invoices("acme") if i["kind"] == "usage"][:1]
    assert first["total_minor"] == 100
    world.usage("acme", START + day(0, 2), HUGE)
    # WHEN an operator reruns it
    status, answer = _rerun(first["id"], "rr-1")
    # THEN 409 naming the invoice and the line; no adjustment recorded (the 100 is not taken back)
    assert status == 409, answer
    assert answer["error"]["code"] == "correction_unbillable"
    (detail,) = answer["error"]["details"]
    assert (detail["invoice_id"], detail["line_id"], detail["unbillable"]) == (
        first["id"],
        "usage:api_calls::0",
        "amount_too_large",
    )
    assert detail["amount_minor"] == -100
    assert _adjustments(world) == []


def _ended(real: World, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """acme ("metered" plan, 1.00 a call) cancelled at day 0 + 20h after 10 calls, its final window billed
    (1000) and finalized."""
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    sub = subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 10)
    cancel(real.plans, sub["id"], Cancellation(at_period_end=False), now=START + day(0, 20))
    schedule(real, START + day(0, 21))
    work(real, START + day(0, 21), monkeypatch)
    schedule(real, START + day(0, 23))
    assert billing_state(real, sub["id"]).status == "ended"
    final = real.invoices("acme")[-1]
    assert (final["status"], final["total_minor"]) == ("finalized", 1000)
    return final


def test_a_rerun_after_the_end_is_refused_too(real: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world = real
    final = _ended(real, monkeypatch)
    world.usage("acme", START + day(0, 4), HUGE)
    status, answer = _rerun(final["id"], "rr-1")
    assert (status, answer["error"]["code"]) == (409, "correction_unbillable")
    assert [i["kind"] for i in world.invoices("acme")] == ["opening", "usage"]  # no credit note invoice
    assert _credited(world, final["id"]) == 0


def test_the_look_back_leaves_an_unbillable_window_as_billed_and_counts_it(
    world: World, monkeypatch: pytest.MonkeyPatch, counted: list[tuple[str, float]]
) -> None:
    # GIVEN day 0 billed 100; the runaway count reaches day 0 after it was finalized
    billed_days(world, monkeypatch, [10, 5])
    world.usage("acme", START + day(0, 2), HUGE)
    # WHEN day 2 is billed (its look-back re-rates day 0)
    schedule(world, START + day(3, 3))
    work(world, START + day(3, 3), monkeypatch)
    # THEN no adjustment takes day 0's 100 back; the withheld line is counted
    lines = [line for i in world.invoices("acme") for line in i["lines"] if line["kind"] == "adjustment"]
    assert lines == []
    assert ("CorrectionsWithheldUnbillable", 1) in counted
    assert _adjustments(world) == []
    assert_books_agree(world, "acme")


def test_the_upcoming_invoice_withholds_the_same_difference_without_counting_it(
    world: World, monkeypatch: pytest.MonkeyPatch, counted: list[tuple[str, float]]
) -> None:
    from neruba.logic.billing.upcoming import upcoming_invoice

    # GIVEN day 0 billed 100 and the runaway count reaching day 0 after it was finalized
    billed_days(world, monkeypatch, [10, 5])
    world.usage("acme", START + day(0, 2), HUGE)
    # WHEN the upcoming invoice is previewed (twice: a page refreshed)
    for _ in range(2):
        upcoming = upcoming_invoice(
            world.plans, world.ctx.usage, "acme", billing=world.ctx.billing, late=world.ctx
        )
    # THEN it shows no difference taking day 0 back, and a preview counts nothing: the metric is the
    # billing run's (an alarm on it must not fire on page views)
    assert all(line["kind"] != "adjustment" for w in upcoming["windows"] for line in w["lines"])
    assert [name for name, _ in counted if name == "CorrectionsWithheldUnbillable"] == []


def test_the_corrections_sweep_leaves_an_ended_window_as_billed_and_reports_it(
    real: World, monkeypatch: pytest.MonkeyPatch, counted: list[tuple[str, float]]
) -> None:
    from neruba.logic.billing.corrections import late_corrections

    world = real
    final = _ended(real, monkeypatch)
    world.usage("acme", START + day(0, 4), HUGE)
    withheld: list[dict[str, Any]] = []
    assert late_corrections(world.ctx, "acme", START + day(1, 2), withheld) == []
    assert [(w["invoice_id"], w["amount_minor"]) for w in withheld] == [(final["id"], -1000)]
    assert _credited(world, final["id"]) == 0
    assert [i["kind"] for i in world.invoices("acme")] == ["opening", "usage"]
    assert ("CorrectionsWithheldUnbillable", 1) in counted


def test_a_backfill_whose_window_re_rates_unbillable_is_shown_withheld_and_its_commit_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN day 0 billed 100, a runaway count in it, and a backfill adding 3 calls to day 0
    billed_days(world, monkeypatch, [10, 5])
    world.usage("acme", START + day(0, 2), HUGE)
    status, opened = open_backfill(scope())
    assert status == 201, opened
    assert events(opened["id"], calls("late", START + day(0, 5), 3))[0] == 200
    # WHEN previewed
    status, shown = read(f"/admin/backfills/{opened['id']}/preview", backfill_id=opened["id"])
    # THEN the invoice keeps its 100 and shows the line withheld
    assert status == 200, shown
    (row,) = shown["invoices"]
    assert (row["before_minor"], row["after_minor"], row["difference_minor"]) == (100, 100, 0)
    (line,) = row["withheld"]
    assert (line["line_id"], line["unbillable"], line["amount_minor"]) == (
        "usage:api_calls::0",
        "amount_too_large",
        -100,
    )
    # WHEN committed THEN 409 naming the invoice; the backfill stays open, nothing counted or recorded
    status, refused = act(opened["id"], "commit")
    assert status == 409, refused
    assert refused["error"]["code"] == "correction_unbillable"
    assert refused["error"]["details"][0]["invoice_id"] == row["invoice_id"]
    status, again = read(f"/admin/backfills/{opened['id']}", backfill_id=opened["id"])
    assert again["status"] == "open"
    assert _adjustments(world) == []


def test_a_void_that_recomputes_an_unbillable_window_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.billing_api.app import lambda_handler

    billed_days(world, monkeypatch, [10])
    first = next(i for i in world.invoices("acme") if i["kind"] == "usage")
    world.usage("acme", START + day(0, 2), HUGE)
    event = api_event(
        "POST",
        f"/admin/invoices/{first['id']}/void",
        body={"reason": "usage fixed", "regenerate": "recompute"},
        path_parameters={"invoice_id": first["id"]},
        headers={"Idempotency-Key": "v-1"},
    )
    status, answer, _ = call(lambda_handler, event)
    assert status == 409, answer
    assert answer["error"]["code"] == "correction_unbillable"
    stored = world.ctx.invoices.get(first["id"])
    assert stored is not None and stored.status == "finalized"


def test_a_draft_re_rated_unbillable_at_finalization_is_finalized_as_created(
    world: World, monkeypatch: pytest.MonkeyPatch, counted: list[tuple[str, float]]
) -> None:
    # GIVEN a draft for day 0 with 10 calls (100), and the runaway count arriving in its grace period
    world.subscribe("acme")
    world.usage("acme", START + day(0, 1), 10)
    now = START + day(1, 1)
    schedule(world, now)
    work(world, now, monkeypatch)
    world.usage("acme", START + day(0, 1), HUGE)
    # WHEN the scheduler finalizes it
    schedule(world, now + day(0, 2))
    # THEN it is finalized as created (100), the withheld line counted
    usage = next(i for i in world.invoices("acme") if i["kind"] == "usage")
    assert (usage["status"], usage["total_minor"], usage["rev"]) == ("finalized", 100, 0)
    assert ("CorrectionsWithheldUnbillable", 1) in counted
    assert_books_agree(world, "acme")


def test_a_window_billed_with_an_unbillable_line_is_flagged_and_counted(
    world: World, monkeypatch: pytest.MonkeyPatch, counted: list[tuple[str, float]]
) -> None:
    from functions.billing_api.app import lambda_handler

    # GIVEN a runaway count in day 0 (a live event over the line limit) WHEN day 0 is billed
    world.subscribe("acme")
    world.usage("acme", START + day(0, 1), HUGE)
    for d in range(2):
        schedule(world, START + day(d, 1))
        work(world, START + day(d, 1), monkeypatch)
    # THEN the invoice names the unbillable line, and the operator's metric counts it
    usage = next(i for i in world.invoices("acme") if i["kind"] == "usage")
    event = api_event(
        "GET", f"/v1/invoices/{usage['id']}", path_parameters={"invoice_id": usage["id"]}, scopes="read"
    )
    status, shown, _ = call(lambda_handler, event)
    assert status == 200, shown
    assert shown["total_minor"] == 0
    assert shown["unbillable_lines"] == [{"line_id": "usage:api_calls::0", "unbillable": "amount_too_large"}]
    assert ("UnbillableLinesInvoiced", 1) in counted


TWO_METERS = {
    "code": "basic",
    "name": "Basic",
    "currency": "USD",
    "interval": "month",
    "charges": [
        {"meter_code": "api_calls", "model": "per_unit", "unit_price": "0.10"},
        {"meter_code": "jobs", "model": "per_unit", "unit_price": "0.10"},
    ],
}


def _jobs(hour: Any, n: int) -> None:
    """Set the jobs aggregate of one hour (as ingest would)."""
    import boto3

    from neruba.dal.dynamo import to_item
    from neruba.settings import get_settings

    item = {"pk": "AGG#acme#jobs", "sk": hour.strftime("%Y-%m-%dT%H") + "#", "n": n}
    boto3.client("dynamodb").put_item(TableName=get_settings().usage_table, Item=to_item(item))


def test_a_threshold_invoice_never_takes_back_what_earlier_ones_billed_of_an_unbillable_line(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch, counted: list[tuple[str, float]]
) -> None:
    from neruba.dal.plans import PlansRepository
    from neruba.logic.billing.threshold_invoices import evaluate_customer
    from neruba.models.catalog import Meter
    from neruba.settings import get_settings
    from tests.functional.billing.conftest import make_world

    PlansRepository(get_settings().catalog_table).create_meter(
        Meter(code="jobs", name="Jobs", aggregation="count")
    )
    thr = make_world(TWO_METERS, {"acme": {"invoice_threshold_minor": 500}})
    thr.subscribe("acme")
    schedule(thr, START)
    work(thr, START, monkeypatch)
    # GIVEN a threshold invoice of 600 for 60 calls
    thr.usage("acme", START + day(0, 1), 60)
    assert [e.outcome for e in evaluate_customer(thr.ctx, "acme", START + day(0, 2))] == ["issued"]
    # WHEN the calls' count runs away (unbillable) and 60 jobs cross the threshold again
    thr.usage("acme", START + day(0, 1), HUGE)
    _jobs(START + day(0, 2), 60)
    assert [e.outcome for e in evaluate_customer(thr.ctx, "acme", START + day(0, 3))] == ["issued"]
    # THEN the second threshold invoice bills the jobs only: the 600 of calls is not taken back
    second = [i for i in thr.invoices("acme") if i["kind"] == "threshold"][-1]
    assert [(line["meter_code"], line["amount_minor"]) for line in second["lines"]] == [("jobs", 600)]
    assert ("CorrectionsWithheldUnbillable", 1) in counted


def test_a_backfill_taking_the_open_period_over_the_line_limit_is_shown_and_its_commit_refused(
    world: World,
) -> None:
    from datetime import UTC, datetime, timedelta

    from neruba.domain.pricing import MAX_LINE_MINOR

    # GIVEN a current period holding calls billing exactly the line limit, and a backfill of 3 more calls
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    world.subscribe("acme", start=now - timedelta(days=3, hours=5))
    hour = now - timedelta(hours=2)
    world.usage("acme", hour, MAX_LINE_MINOR // 10)
    status, opened = open_backfill(scope(start=(now - timedelta(days=1)).isoformat(), end=now.isoformat()))
    assert status == 201, opened
    assert events(opened["id"], calls("late", hour, 3))[0] == 200
    # WHEN previewed THEN the open period's line is shown unbillable after the commit
    status, shown = read(f"/admin/backfills/{opened['id']}/preview", backfill_id=opened["id"])
    assert status == 200, shown
    (period,) = shown["open_periods"]
    assert period["unbillable_lines"] == [{"line_id": "usage:api_calls::0", "unbillable": "amount_too_large"}]
    # AND the commit is refused, the backfill left open
    status, refused = act(opened["id"], "commit")
    assert (status, refused["error"]["code"]) == (409, "correction_unbillable"), refused
    assert read(f"/admin/backfills/{opened['id']}", backfill_id=opened["id"])[1]["status"] == "open"


def test_once_the_usage_is_corrected_the_look_back_bills_the_line_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN day 0 billed with its line flagged (a runaway count: 0 billed)
    world.subscribe("acme")
    world.usage("acme", START + day(0, 1), HUGE)
    for d in range(2):
        schedule(world, START + day(d, 1))
        work(world, START + day(d, 1), monkeypatch)
    schedule(world, START + day(1, 5))
    # WHEN the usage is corrected to 10 calls and day 1 is billed
    world.usage("acme", START + day(0, 1), 10)
    schedule(world, START + day(2, 1))
    work(world, START + day(2, 1), monkeypatch)
    # THEN day 1's invoice carries +100 for day 0: the window's usage is billed exactly once
    adjustments = [(line["kind"], line["amount_minor"]) for i in world.invoices("acme") for line in i["lines"]
                   if line["kind"] == "adjustment"]  # fmt: skip
    assert adjustments == [("adjustment", 100)]
    assert_books_agree(world, "acme")
