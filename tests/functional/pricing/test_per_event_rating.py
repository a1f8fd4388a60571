"""Per-event bounds end to end: a plan published through the API registers its rule on the meter, the
real ingest worker prices each event into the cell, rating sums it; events counted before the rule
existed are flagged on the line until the usage sweep recounts the cell from its events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from neruba.settings import get_settings
from tests.functional.ingest.conftest import ev

NOW = datetime.now(UTC).replace(microsecond=0)
START = (NOW - timedelta(days=3)).replace(minute=0, second=0)
CHARGE = {
    "meter_code": "tokens",
    "model": "percentage",
    "rate": "1",
    "fixed_fee": "0.30",
    "per_event_max": "5",
}


def _publish(code: str, charge: dict[str, Any] = CHARGE) -> dict[str, Any]:
    from neruba.dal.plans import PlansRepository
    from neruba.logic.catalog.entries import create_plan
    from neruba.logic.catalog.subscriptions import create_subscription
    from neruba.models.catalog import PlanCreate, SubscriptionCreate

    plans = PlansRepository(get_settings().catalog_table)
    body = {"code": code, "name": "Bounded", "currency": "USD", "interval": "month", "charges": [charge]}
    create_plan(plans, PlanCreate.model_validate(body))
    return create_subscription(
        plans, SubscriptionCreate(customer_id="acme", plan_code=code, start_at=START), None, now=NOW
    )


def _line(sub: dict[str, Any], group: str = "model=a") -> Any:
    from neruba.dal.plans import PlansRepository
    from neruba.dal.usage import UsageRepository
    from neruba.domain.periods import add_interval
    from neruba.logic.pricing.rating import rate_window

    plans = PlansRepository(get_settings().catalog_table)
    usage = UsageRepository(get_settings().usage_table)
    window = rate_window(plans, usage, sub, START, add_interval(START, "month", 1), as_of=NOW)
    return next(line for line in window.lines if line.line_id == f"usage:tokens:{group}:0")


def _tokens(tx: str, amount: int, hour: int, model: str = "a") -> dict[str, Any]:
    at = (START + timedelta(hours=hour, minutes=5)).isoformat()
    return ev(tx, code="tokens", timestamp=at, properties={"tokens": amount, "model": model})


def test_a_filters_per_event_bounds_are_registered_and_price_its_groups(
    catalog: Any, send: Callable[..., Any], process: Callable[..., int]
) -> None:
    # GIVEN 1% per event by default, and for model a 2% + 1 per event within 1.50..3 (a filter's bounds)
    bounds = {"rate": "2", "fixed_fee": "1", "per_event_min": "1.5", "per_event_max": "3"}
    charge = {"meter_code": "tokens", "model": "percentage", "rate": "1",
              "filters": [{"values": {"model": ["a"]}, **bounds}]}  # fmt: skip
    sub = _publish("filtered", charge)
    # WHEN a events of 1, 100 and 1,000 and a b event of 1,000 are ingested and rated
    send(_tokens("f1", 1, 1), _tokens("f2", 100, 1), _tokens("f3", 1000, 2), _tokens("f4", 1000, 2, "b"))
    process()
    # THEN a: 1.50 (1.02 raised) + 3 + 3 (21 capped) = 7.50, not 2% of 1,101 + 3 x 1 = 25.02; b: 10.00
    line = _line(sub)
    assert (line.amount_minor, line.source["per_event_charges"]) == (750, Decimal("7.5"))
    assert "unbillable" not in line.source
    assert _line(sub, "model=b").amount_minor == 1000


def test_bounded_percentage_priced_per_event_from_ingest(
    catalog: Any, send: Callable[..., Any], process: Callable[..., int]
) -> None:
    # GIVEN the plan published (its rule registered on the meter), then events of 100, 1,000 and 10
    sub = _publish("bounded")
    send(_tokens("t1", 100, 1), _tokens("t2", 1000, 1), _tokens("t3", 10, 2))
    process()
    # WHEN rated THEN 1.30 + 5 (10.30 capped) + 0.40 = 6.70, not 1% of 1,110 + 3 x 0.30 = 12.00
    line = _line(sub)
    assert (line.amount_minor, line.source["events"], line.source["hours"]) == (670, 3, 2)
    assert "unbillable" not in line.source


def test_events_counted_before_the_rule_are_flagged_then_recounted_by_the_sweep(
    catalog: Any, send: Callable[..., Any], process: Callable[..., int]
) -> None:
    from neruba.dal.catalog import CatalogCache
    from neruba.dal.usage import UsageRepository
    from neruba.logic.sweeps.usage import sweep_usage

    # GIVEN an event counted before the plan with the rule existed, and one after
    send(_tokens("early", 1000, 1))
    process()
    sub = _publish("late_rule")
    send(_tokens("later", 100, 1))
    process()
    # WHEN rated THEN the line is not guessed: billed 0 and flagged
    line = _line(sub)
    assert (line.amount_minor, line.source["unbillable"], line.source["per_event_priced"]) == (
        0,
        "per_event_rule_incomplete",
        1,
    )
    # WHEN the usage sweep rechecks the window's cells from their events
    from neruba import bootstrap

    report = sweep_usage(
        UsageRepository(get_settings().usage_table),
        CatalogCache(bootstrap.catalog(), ttl_seconds=0).lookup,
        datetime.now(UTC) - timedelta(hours=1),
        datetime.now(UTC) + timedelta(hours=1),
        now=datetime.now(UTC) + timedelta(minutes=30),
    )
    assert report.drift_found == 1, report
    # THEN the cell holds the rule's sum for both events and the line bills 5 + 1.30
    line = _line(sub)
    assert (line.amount_minor, line.source.get("unbillable")) == (630, None)


class _Killed(BaseException):
    """The worker process dying between its event writes and its cell writes."""


def test_killed_worker_redelivered_in_other_batches_prices_each_event_once(
    catalog: Any, send: Callable[..., Any], worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.dal.pending import PendingUsage
    from neruba.dal.usage import UsageRepository
    from tests.support.aws import queue_url
    from tests.support.queues import drain, receive_batch, run_batch

    # GIVEN the bounded plan published, then a batch of 12 events whose worker dies before counting
    sub = _publish("bounded_faults")
    send(*[_tokens(f"k{i}", 100 * (i + 1), 1 + i % 3) for i in range(12)])
    url = queue_url("IngestQueue")
    messages = receive_batch(url, 100)

    def killed(*args: Any, **kwargs: Any) -> bool:
        raise _Killed

    with monkeypatch.context() as patch:
        patch.setattr(UsageRepository, "count_group", killed)
        patch.setattr(PendingUsage, "put", killed)  # the sparse days' write
        assert len(run_batch(worker, url, messages)) == 12  # nothing counted, every message fails
    # WHEN SQS redelivers the messages in smaller, different batches, after the visibility timeout (a
    # killed batch's messages come back no sooner), when the killed attempt's hold has passed
    from neruba.logic.ingest import worker as ingest_worker

    monkeypatch.setattr(ingest_worker, "HOLD", timedelta(0))
    drain(worker, url, batch_size=5)
    # THEN each event's bounded charge is in the rule's sum exactly once: min(1% x v + 0.30, 5)
    expected = sum(min(Decimal(100 * (i + 1)) / 100 + Decimal("0.30"), Decimal(5)) for i in range(12))
    line = _line(sub)
    assert (line.source["events"], line.source["per_event_charges"]) == (12, expected)
    assert line.amount_minor == int(expected * 100) and "unbillable" not in line.source


def test_publishing_twice_or_crashing_after_registering_keeps_one_rule(
    catalog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neruba.dal.catalog import CatalogRepository
    from neruba.dal.plans import PlansRepository
    from neruba.domain.event_rules import digest, rule_of
    from neruba.logic.catalog.entries import create_plan
    from neruba.models.catalog import PlanCreate

    plans = PlansRepository(get_settings().catalog_table)
    body = PlanCreate.model_validate(
        {"code": "crashy", "name": "C", "currency": "USD", "interval": "month", "charges": [CHARGE]}
    )

    class _Crash(Exception):
        pass

    def crash(*args: Any, **kwargs: Any) -> int:
        raise _Crash

    # GIVEN a publish that dies after registering the rule, before the version is stored
    with monkeypatch.context() as patch:
        patch.setattr(PlansRepository, "publish", crash)
        with pytest.raises(_Crash):
            create_plan(plans, body)
    # WHEN it is retried (and the same rule is registered again by another plan)
    create_plan(plans, body)
    create_plan(plans, body.model_copy(update={"code": "same_rule"}))
    # THEN the meter holds the rule once, under its digest, and the plans exist
    rules = CatalogRepository(get_settings().catalog_table).lookup(set(), {"tokens"}).event_rules["tokens"]
    rule = rule_of({"model": "percentage", **CHARGE})
    assert rule is not None and rules == {digest(rule): rule}
    assert plans.plan("crashy").document["code"] == "crashy"


def test_a_drifted_per_event_sum_in_a_day_contribution_is_repaired_by_the_sweep(
    catalog: Any, send: Callable[..., Any], process: Callable[..., int]
) -> None:
    from neruba.dal.catalog import CatalogCache
    from neruba.dal.usage import UsageRepository
    from neruba.logic.sweeps.usage import sweep_usage
    from tests.support.usage import set_cell

    # GIVEN the bounded plan, two events counted in one cell, and that cell's per-event sum corrupted in
    # its day contribution (its count of events priced left as it was)
    sub = _publish("drifted_sum")
    send(_tokens("d1", 100, 1), _tokens("d2", 1000, 1))
    process()
    usage = UsageRepository(get_settings().usage_table)
    (cell,) = [c for c in usage.aggregates("acme", "tokens", "0000", "9999") if c.group == "model=a"]
    (name,) = cell.usage.event_sums
    set_cell(cell, pe={"M": {name: {"N": "999"}}})
    assert _line(sub).amount_minor == 99900
    # WHEN the usage sweep rechecks the window's cells from their events
    from neruba import bootstrap

    report = sweep_usage(
        usage,
        CatalogCache(bootstrap.catalog(), ttl_seconds=0).lookup,
        datetime.now(UTC) - timedelta(hours=1),
        datetime.now(UTC) + timedelta(hours=1),
        now=datetime.now(UTC) + timedelta(minutes=30),
    )
    # THEN it finds the drift and the line bills 1.30 + 5 again
    assert report.drift_found == 1, report
    assert _line(sub).amount_minor == 630
