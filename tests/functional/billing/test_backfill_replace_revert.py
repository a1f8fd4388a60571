"""Reverting a ``mode: replace`` backfill months after its range (far past the void horizon): the events
it replaced are given back (restored once, their cells recomputed), the events it counted voided, its
invoices corrected by the revert's keyed reruns; killed between and inside the steps, sent twice, two at
once, resumed by the billing sweep's re-sent message and the worker, and by the ``voids`` check."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from neruba.timefmt import ts
from tests.functional.billing.backfill_support import PRICE, act, calls, read
from tests.functional.billing.conftest import START, World, assert_books_agree
from tests.functional.billing.helpers import Killed, day, work
from tests.functional.billing.test_backfill_replace import (  # the world and its replace
    _day_totals,
    _rated,
    _replace_day0,
    _status,
    stored,  # noqa: F401 (a fixture)
)

ORIGINAL = {ts(START): 3 * PRICE, ts(START + day(1)): 4 * PRICE}
LATER = START + day(200)  # a revert 200 days after the range


@pytest.fixture
def replaced(world: World, stored: None) -> str:  # noqa: F811 (the imported fixture)
    """Day 0's 3 live calls (s0-*) replaced by a committed backfill's 5 (r0-*): 20 pending on day 0."""
    backfill = _replace_day0(calls("r0", START + day(0, 6), 5))
    assert act(backfill, "commit")[1]["status"] == "committed"
    assert _rated(world, 0) == 5 * PRICE
    return backfill


def _revert(backfill_id: str, key: str = "r-1") -> tuple[int, Any]:
    return act(backfill_id, "revert", key=key, body={"reason": "wrong export", "ticket": "FIN-3"})


def _back_to_the_original(world: World, monkeypatch: Any) -> None:
    assert [_status(world, f"s0-{i}") for i in range(3)] == ["accepted"] * 3
    assert [_status(world, f"r0-{i}") for i in range(5)] == ["voided"] * 5
    assert _rated(world, 0) == 3 * PRICE and _rated(world, 1) == 4 * PRICE
    assert _day_totals(world, monkeypatch) == ORIGINAL
    assert_books_agree(world, "acme")


def _event(tx: str) -> tuple[int, Any]:
    """``GET /v1/events/{tx}`` (read API)."""
    from functions.read_api.app import lambda_handler
    from tests.support.api import api_event, call

    path = f"/v1/events/{tx}"
    event = api_event("GET", path, path_parameters={"transaction_id": tx}, query={"customer_id": "acme"})
    status, answer, _ = call(lambda_handler, event)
    return status, answer


def _audits(action: str) -> int:
    from neruba.dal.audit import AuditRepository
    from neruba.settings import get_settings

    records, _ = AuditRepository(get_settings().ops_table).list("acme", 500)
    return [r["action"] for r in records].count(action)


def test_a_revert_gives_back_what_the_replace_voided_and_takes_back_what_it_added(
    world: World, replaced: str, monkeypatch: Any
) -> None:
    status, done = _revert(replaced)

    assert (status, done["status"]) == (200, "reverted")
    assert (done["reverted"]["events_restored"], done["reverted"]["events_voided"]) == (3, 5)
    assert [i["amount_minor"] for i in done["reverted"]["invoices"]] == [-2 * PRICE]
    event = world.ctx.usage.get_event("acme", "s0-0")
    assert event is not None and event.void_json is None
    status, shown = _event("s0-0")
    assert (status, shown["status"], shown["restored"]["backfill"]) == (200, "accepted", replaced)
    assert shown["restored"]["void"]["reason"].startswith(f"replaced by backfill {replaced}")
    assert _audits("event.restore") == 3 and _audits("backfill.revert") == 1
    _back_to_the_original(world, monkeypatch)


def test_a_revert_sent_twice_or_with_another_key_restores_once(
    world: World, replaced: str, monkeypatch: Any
) -> None:
    first = _revert(replaced)[1]
    assert _revert(replaced)[1] == first == _revert(replaced, key="r-other")[1]
    assert _audits("event.restore") == 3
    _back_to_the_original(world, monkeypatch)


@pytest.mark.parametrize("step", ["restore_replaced", "void_events", "correct_invoices"])
def test_killed_between_steps_then_reverted_again(
    world: World, replaced: str, monkeypatch: Any, step: str
) -> None:
    from neruba.logic.billing import backfill_replace, backfill_revert

    def dying(*args: Any, **kwargs: Any) -> Any:
        raise Killed

    monkeypatch.setattr(backfill_replace if step == "restore_replaced" else backfill_revert, step, dying)
    with pytest.raises(Killed):
        _revert(replaced)
    assert read(f"/admin/backfills/{replaced}", backfill_id=replaced)[1]["status"] == "reverting"
    monkeypatch.undo()

    assert _revert(replaced, key="r-2")[1]["reverted"]["events_restored"] == 3
    _back_to_the_original(world, monkeypatch)


def test_killed_after_a_restore_before_its_recount_then_finished(
    world: World, replaced: str, monkeypatch: Any
) -> None:
    from neruba.logic.ingest import restores
    from neruba.logic.ingest.voids import finish_open

    # GIVEN the first restore committed (s0-0 accepted again) and the process killed before its recount
    def dying(*args: Any, **kwargs: Any) -> Any:
        raise Killed

    monkeypatch.setattr(restores, "finish", dying)
    with pytest.raises(Killed):
        _revert(replaced)
    monkeypatch.undo()
    restored = [tx for tx in (f"s0-{i}" for i in range(3)) if _status(world, tx) == "accepted"]
    assert len(restored) == 1 and _rated(world, 0) == 5 * PRICE  # its cell not recomputed yet
    # WHEN the voids sweep check runs: the open void recomputes the cell with the restored event
    assert [v["transaction_id"] for v in finish_open()["finished"]] == restored
    assert _rated(world, 0) == 6 * PRICE
    # THEN the revert again restores the other two once and goes on
    assert _revert(replaced, key="r-2")[1]["status"] == "reverted"
    assert _audits("event.restore") == 3
    _back_to_the_original(world, monkeypatch)


def test_two_reverts_at_once_restore_and_correct_once(world: World, replaced: str, monkeypatch: Any) -> None:
    from neruba import bootstrap
    from neruba.logic.billing import backfill_revert

    # GIVEN revert A stopped after restoring and voiding (still running, about to correct)
    def pause(*args: Any, **kwargs: Any) -> Any:
        raise Killed

    monkeypatch.setattr(backfill_revert, "correct_invoices", pause)
    with pytest.raises(Killed):
        _revert(replaced, key="a")
    monkeypatch.undo()
    # WHEN revert B runs to its end, then A goes on with its own steps
    assert _revert(replaced, key="b")[1]["status"] == "reverted"
    backfill_revert.run_steps(bootstrap.billing(), replaced, "key:op", None, LATER)

    assert _audits("event.restore") == 3
    _back_to_the_original(world, monkeypatch)


def test_a_stuck_revert_is_resent_by_the_sweep_and_finished_by_the_worker(
    world: World, replaced: str, monkeypatch: Any
) -> None:
    from neruba import bootstrap
    from neruba.logic.billing import backfill_replace
    from neruba.logic.billing.backfill_revert import revert_backfill
    from neruba.logic.sweeps.backfills import stuck_backfills
    from neruba.logic.sweeps.billing import COOLDOWN
    from neruba.logic.sweeps.runner import CheckResult, SweepContext
    from neruba.models.backfills import BackfillAction
    from neruba.settings import get_settings

    def dying(*args: Any, **kwargs: Any) -> Any:
        raise Killed

    monkeypatch.setattr(backfill_replace, "restore_replaced", dying)
    with pytest.raises(Killed):
        revert_backfill(
            world.ctx, replaced, BackfillAction(reason="wrong export"), "key:op", "r-1", None, LATER
        )
    monkeypatch.undo()

    def sweep(at: datetime) -> Any:
        ctx = SweepContext(at - timedelta(hours=1), at, at, get_settings(), lambda: world.ctx)
        result = CheckResult("billing", details={"in_flight": []})
        stuck_backfills(ctx, world.ctx, bootstrap.ops(), result, result.details, COOLDOWN)
        return result

    assert sweep(LATER + timedelta(minutes=20)).repairs == [
        {"kind": "backfill_revert_resent", "backfill_id": replaced}
    ]
    work(world, LATER + timedelta(minutes=21), monkeypatch)

    assert read(f"/admin/backfills/{replaced}", backfill_id=replaced)[1]["status"] == "reverted"
    _back_to_the_original(world, monkeypatch)


def test_a_revert_restoring_many_events_is_finished_by_the_billing_worker(
    world: World, replaced: str, monkeypatch: Any
) -> None:
    from neruba.logic.billing import backfill_commit
    from neruba.logic.billing.backfill_revert import revert_backfill
    from neruba.models.backfills import BackfillAction

    # 5 events to void and 3 to give back: more than a request runs inline (6 here)
    monkeypatch.setattr(backfill_commit, "INLINE_EVENTS", 6)
    action = BackfillAction(reason="wrong export")
    assert revert_backfill(world.ctx, replaced, action, "key:op", "r-1", None, LATER)["status"] == "reverting"
    work(world, LATER + timedelta(minutes=1), monkeypatch)
    monkeypatch.undo()

    assert read(f"/admin/backfills/{replaced}", backfill_id=replaced)[1]["status"] == "reverted"
    _back_to_the_original(world, monkeypatch)


@pytest.fixture
def capped(world: World) -> None:
    """acme's api_calls under a unit cap: every counted event is in the period's limit counter."""
    from neruba.logic.idempotency import Actor
    from neruba.logic.limits.settings import put_limits
    from neruba.models.limits import UsageLimitsIn

    put_limits(
        "acme",
        UsageLimitsIn.model_validate({"meters": [{"meter_code": "api_calls", "hard_cap": "1000"}]}),
        None,
        Actor(),
    )


def _counted() -> Any:
    from neruba import bootstrap
    from neruba.domain.limits import LimitSettings

    catalog = bootstrap.catalog().lookup({"acme"}, {"api_calls"})
    limits = LimitSettings.from_stored(catalog.limit_settings("acme", START))
    assert limits is not None
    start, end = limits.period(START)
    return bootstrap.limits().counter("acme", "api_calls", start, end).used


def test_the_limit_counter_gets_the_restored_events_back(
    world: World, capped: None, replaced: str, monkeypatch: Any
) -> None:
    from decimal import Decimal

    # day 1's 4 calls and the replace's 5 (day 0's 3 voided)
    assert _counted() == Decimal(9)
    assert _revert(replaced)[1]["status"] == "reverted"
    assert _counted() == Decimal(7)  # day 0's 3 given back, the replace's 5 voided
    _back_to_the_original(world, monkeypatch)


def test_a_replace_and_its_revert_near_the_worker_deadline_go_on_over_several_invocations(
    world: World,
    stored: None,  # noqa: F811 (the imported fixture)
    monkeypatch: Any,
) -> None:
    from neruba.logic.billing import backfill_commit
    from tests.support.lambda_context import FakeContext

    # GIVEN commits and reverts left to the worker, whose every invocation is near its end (5 s left,
    # less than the reserve a backfill's run keeps): each invocation does one unit of work and stops
    monkeypatch.setattr(backfill_commit, "INLINE_EVENTS", 3)
    monkeypatch.setattr(FakeContext, "get_remaining_time_in_millis", lambda self: 5_000)
    backfill = _replace_day0(calls("r0", START + day(0, 6), 5))
    assert act(backfill, "commit")[1]["status"] == "committing"
    # WHEN the worker runs the commit: 3 voids of the replaced events, one batch counted, one rerun
    runs = work(world, START + day(2, 6), monkeypatch)
    # THEN it went on over one invocation per unit, and ended committed once
    assert runs >= 3 + 1 + 1
    assert read(f"/admin/backfills/{backfill}", backfill_id=backfill)[1]["status"] == "committed"
    assert _rated(world, 0) == 5 * PRICE and _audits("event.void") == 3
    # WHEN it is reverted: 3 events given back, 5 voided, one rerun, each in an invocation of its own
    assert _revert(backfill)[1]["status"] == "reverting"
    runs = work(world, LATER, monkeypatch)
    # THEN everything is back as it was, each event restored or voided once
    assert runs >= 3 + 5 + 1
    shown = read(f"/admin/backfills/{backfill}", backfill_id=backfill)[1]
    assert shown["status"] == "reverted"
    assert (shown["reverted"]["events_restored"], shown["reverted"]["events_voided"]) == (3, 5)
    assert (_audits("event.restore"), _audits("event.void")) == (3, 3 + 5)
    _back_to_the_original(world, monkeypatch)
