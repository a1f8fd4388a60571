"""Whose events a correction carries (docs/billing.md, "Whose events a correction carries"): when a
backfill's rerun of an invoice runs after another backfill's, an operator's rerun or void changed the
same window, each backfill's record reports the money its own events changed and each adjustment line
names the backfills whose events it carries, whoever ran the rerun."""

from __future__ import annotations

from typing import Any

import pytest

from neruba.timefmt import ts
from tests.functional.billing.backfill_support import (
    PRICE,
    act,
    events,
    live_events,
    open_backfill,
    read,
    scope,
    usage_totals,
)
from tests.functional.billing.conftest import START, World, assert_books_agree
from tests.functional.billing.helpers import Killed, day, schedule, work
from tests.functional.billing.test_prorated_meters import seats as seat_plan

seats = seat_plan  # the fixture, under the name the test asks for


@pytest.fixture
def billed(world: World, monkeypatch: Any) -> None:
    """acme's day 0 (s0-0, s0-1, s0-2 sent live; s0-2 voided before billing) billed at 2 calls and
    finalized, as days 1 and 2 (nothing)."""
    from neruba.logic.ingest.voids import VoidRequest, void_event

    world.subscribe("acme")
    live_events(world, [f"s0-{i}" for i in range(3)], START + day(0, 2), "live-0")
    request = VoidRequest("acme", "s0-2", "sent twice by the collector", "OPS-1")
    void_event(request, "key:op", "v-s0-2", "req-v", START + day(0, 4))
    for d in range(3):
        schedule(world, START + day(d, 3))
        work(world, START + day(d, 3), monkeypatch)
    schedule(world, START + day(2, 5))
    assert _rated(world, 0) == 2 * PRICE


def _rated(world: World, n: int) -> int:
    terms = world.ctx.subscription(world.subscriptions[0]["id"]).timeline
    return world.ctx.rate_window(terms, START + day(n), START + day(n + 1)).subtotal_minor


def _open(key: str, mode: str = "add", first: int = 0, last: int = 24, reason: str = "") -> str:
    body = scope(
        mode=mode,
        start=(START + day(0, first)).isoformat(),
        end=(START + day(0, last)).isoformat(),
        reason=reason or f"backfill {key}",
    )
    status, bf = open_backfill(body, key=key)
    assert status == 201, bf
    return str(bf["id"])


def _hold(backfill: str, tx: str, hour: int) -> None:
    _, answer = events(backfill, [{"transaction_id": tx, "timestamp": (START + day(0, hour)).isoformat()}])
    assert answer["held"] == 1, answer


def _paused_after_counting(backfill: str, monkeypatch: Any) -> None:
    """The backfill's commit stops after counting its events (still running: it corrects later)."""
    from neruba.logic.billing import backfill_commit

    def pause(*args: Any, **kwargs: Any) -> Any:
        raise Killed

    monkeypatch.setattr(backfill_commit, "correct_invoices", pause)
    with pytest.raises(Killed):
        act(backfill, "commit", key=f"first-{backfill}")
    monkeypatch.undo()


def _day0(answer: dict[str, Any], world: World) -> dict[str, Any]:
    day0 = [i for i in world.invoices("acme") if i["period_start"] == ts(START)]
    [row] = [r for r in answer["invoices"] if r["invoice_id"] in {i["id"] for i in day0}]
    return dict(row)


def _pending(world: World) -> list[dict[str, Any]]:
    found = world.ctx.billing.adjustments(world.subscriptions[0]["id"])
    return [dict(a.line) for a in found]


def _named(line: dict[str, Any]) -> dict[str, int]:
    return {str(b["backfill_id"]): int(b["amount_minor"]) for b in line["source"].get("backfills") or []}


def test_the_backfill_that_counted_reports_and_is_named_not_the_one_that_reran_first(
    world: World, billed: None, monkeypatch: Any
) -> None:
    # GIVEN two add backfills holding an event under the voided id s0-2: A first (counted), B after
    first = _open("bf-a", reason="resend voided 3")
    _hold(first, "s0-2", 2)
    second = _open("bf-b")
    _hold(second, "s0-2", 5)
    # WHEN A counts and stops before correcting, B commits whole (its rerun runs first), A goes on
    _paused_after_counting(first, monkeypatch)
    done_b = act(second, "commit", key="cb")[1]
    done_a = act(first, "commit", key="ca")[1]

    # THEN the money is right: one copy counted, +1 call
    assert _rated(world, 0) == 3 * PRICE
    assert (done_a["committed"]["events_counted"], done_b["committed"]["events_not_counted"]) == (1, 1)
    # AND each record reports what its own events changed
    row_a, row_b = _day0(done_a["committed"], world), _day0(done_b["committed"], world)
    assert (row_a["action"], row_a["amount_minor"], row_a["total_minor"]) == (
        "adjustment_pending",
        PRICE,
        PRICE,
    )
    assert (row_b["action"], row_b["amount_minor"], row_b["total_minor"]) == ("unchanged", 0, 0)
    # AND the one adjustment line names A with its reason
    [line] = _pending(world)
    assert line["amount_minor"] == PRICE
    assert line["source"]["backfill"]["backfill_id"] == first
    assert line["source"]["backfill"]["reason"] == "resend voided 3"
    assert _named(line) == {first: PRICE}

    # explain shows it on the next invoice that carries it
    schedule(world, START + day(3, 3))
    work(world, START + day(3, 3), monkeypatch)
    [carrying] = [i for i in world.invoices("acme") if any(ln["kind"] == "adjustment" for ln in i["lines"])]
    _, explained = read(f"/v1/invoices/{carrying['id']}/explain", invoice_id=carrying["id"])
    [shown] = [ln for ln in explained["lines"] if ln["kind"] == "adjustment"]
    assert shown["backfill"]["backfill_id"] == first
    assert [(b["backfill_id"], b["amount_minor"]) for b in shown["backfills"]] == [(first, PRICE)]
    assert usage_totals(world)[ts(START)] == 3 * PRICE
    assert_books_agree(world, "acme")


def test_one_rerun_carrying_two_backfills_names_both_and_each_revert_its_own_part(
    world: World, billed: None, monkeypatch: Any
) -> None:
    # GIVEN two add backfills over day 0 with events of their own: A one call, B two
    first, second = _open("bf-a"), _open("bf-b")
    _hold(first, "a-1", 6)
    _hold(second, "b-1", 7)
    _hold(second, "b-2", 8)
    # WHEN A stops after counting and B commits whole: B's rerun carries both
    _paused_after_counting(first, monkeypatch)
    done_b = act(second, "commit", key="cb")[1]
    done_a = act(first, "commit", key="ca")[1]

    # THEN one line of +3 calls names both, each with its share; each record has its own
    [line] = _pending(world)
    assert line["amount_minor"] == 3 * PRICE
    assert _named(line) == {first: PRICE, second: 2 * PRICE}
    assert _day0(done_a["committed"], world)["amount_minor"] == PRICE
    assert _day0(done_b["committed"], world)["amount_minor"] == 2 * PRICE

    # WHEN each is reverted: each reports and is named for its own part, and they net to zero
    rev_a = act(first, "revert", key="ra")[1]
    rev_b = act(second, "revert", key="rb")[1]
    assert _day0(rev_a["reverted"], world)["amount_minor"] == -PRICE
    assert _day0(rev_b["reverted"], world)["amount_minor"] == -2 * PRICE
    lines = _pending(world)
    assert sorted(ln["amount_minor"] for ln in lines) == [-2 * PRICE, -PRICE, 3 * PRICE]
    reverts = [ln for ln in lines if ln["amount_minor"] < 0]
    assert {tuple(_named(ln).items()) for ln in reverts} == {((first, -PRICE),), ((second, -2 * PRICE),)}
    assert all(ln["source"]["backfills"][0]["revert"] for ln in reverts)
    assert sum(ln["amount_minor"] for ln in lines) == 0
    assert _rated(world, 0) == 2 * PRICE
    # explain on the invoice that carries them shows each line's backfills and revert parts
    schedule(world, START + day(3, 3))
    work(world, START + day(3, 3), monkeypatch)
    [carrying] = [i for i in world.invoices("acme") if any(ln["kind"] == "adjustment" for ln in i["lines"])]
    status, explained = read(f"/v1/invoices/{carrying['id']}/explain", invoice_id=carrying["id"])
    assert status == 200, explained
    shown = sorted(
        [(b["backfill_id"], b["revert"], b["amount_minor"]) for b in ln["backfills"]]
        for ln in explained["lines"]
        if ln["kind"] == "adjustment"
    )
    assert shown == sorted(
        [
            [(first, False, PRICE), (second, False, 2 * PRICE)],
            [(first, True, -PRICE)],
            [(second, True, -2 * PRICE)],
        ]
    )
    assert_books_agree(world, "acme")


def test_an_operator_rerun_and_void_racing_a_commit_are_each_named_for_their_part(
    world: World, billed: None, monkeypatch: Any
) -> None:
    from neruba.logic.ingest.voids import VoidRequest, void_event
    from tests.functional.billing.backfill_support import handler
    from tests.support.api import api_event, call

    # GIVEN an add backfill of two calls that stopped after counting, and an operator's void of s0-0
    backfill = _open("bf-a")
    _hold(backfill, "a-1", 6)
    _hold(backfill, "a-2", 7)
    _paused_after_counting(backfill, monkeypatch)
    void_event(
        VoidRequest("acme", "s0-0", "test traffic", "OPS-2"), "key:op", "v-s0-0", "req-v2", START + day(2, 6)
    )
    # WHEN the operator reruns day 0's invoice (before the backfill's own rerun)
    [day0] = [i for i in world.invoices("acme") if i["period_start"] == ts(START) and i["kind"] == "usage"]
    event = api_event(
        "POST",
        f"/admin/invoices/{day0['id']}/rerun",
        body={"reason": "customer asked"},
        path_parameters={"invoice_id": day0["id"]},
        headers={"Idempotency-Key": "op-rerun"},
    )
    status, rerun, _ = call(handler(), event)
    assert status == 200, rerun

    # THEN its line (+2 calls -1 call) names the backfill for +2 and the rest (the void) as other
    [line] = _pending(world)
    assert line["amount_minor"] == PRICE
    assert _named(line) == {backfill: 2 * PRICE}
    assert line["source"]["other_minor"] == -PRICE
    # AND the backfill, going on, reports its +2 though its own rerun found nothing left
    done = act(backfill, "commit", key="ca")[1]
    row = _day0(done["committed"], world)
    assert (row["action"], row["amount_minor"]) == ("adjustment_pending", 2 * PRICE)
    assert len(_pending(world)) == 1
    assert_books_agree(world, "acme")


def test_a_replace_and_an_add_in_one_window_are_each_named(
    world: World, billed: None, monkeypatch: Any
) -> None:
    # GIVEN a replace of day 0's afternoon (nothing stored there: one call) and an add of its morning
    replace = _open("bf-r", mode="replace", first=12, last=24)
    _hold(replace, "r-1", 13)
    add = _open("bf-a", first=0, last=12)
    _hold(add, "a-1", 6)
    _hold(add, "a-2", 7)
    # WHEN the replace stops after counting and the add commits whole
    _paused_after_counting(replace, monkeypatch)
    done_add = act(add, "commit", key="ca")[1]
    done_replace = act(replace, "commit", key="cr")[1]

    # THEN the add's rerun carried both, named each for its part
    [line] = _pending(world)
    assert _named(line) == {replace: PRICE, add: 2 * PRICE}
    assert _day0(done_add["committed"], world)["amount_minor"] == 2 * PRICE
    assert _day0(done_replace["committed"], world)["amount_minor"] == PRICE
    assert _rated(world, 0) == 5 * PRICE
    assert_books_agree(world, "acme")


def test_after_the_end_the_correction_invoice_names_the_backfill_that_counted(
    real: World, monkeypatch: Any
) -> None:
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.logic.ingest.voids import VoidRequest, void_event
    from neruba.models.catalog import Cancellation
    from tests.functional.billing.conftest import subscribe_real
    from tests.functional.billing.helpers import billing_state

    per_call = 100  # the real world's "metered" plan
    # GIVEN a subscription ended on day 0 whose final invoice billed s0-0 and s0-1 (s0-2 was voided)
    sub = subscribe_real(real, "acme")
    live_events(real, [f"s0-{i}" for i in range(3)], START + day(0, 2), "live-0")
    void_event(VoidRequest("acme", "s0-2", "sent twice", "OPS-1"), "key:op", "v", "req", START + day(0, 4))
    cancel(real.plans, sub["id"], Cancellation(at_period_end=False), now=START + day(0, 20))
    schedule(real, START + day(0, 21))
    work(real, START + day(0, 21), monkeypatch)
    schedule(real, START + day(0, 23))
    assert billing_state(real, sub["id"]).status == "ended"
    # AND two add backfills under the voided id: A counts it, B holds other content
    first = _open("bf-a", reason="resend voided 3", last=20)
    _hold(first, "s0-2", 2)
    second = _open("bf-b", last=20)
    _hold(second, "s0-2", 5)

    # WHEN A stops after counting, B commits whole (its rerun runs first), then A goes on
    _paused_after_counting(first, monkeypatch)
    done_b = act(second, "commit", key="cb")[1]
    done_a = act(first, "commit", key="ca")[1]

    # THEN one correction invoice of +1 call, reported by A and naming A; B reports nothing
    row_a, row_b = _day0(done_a["committed"], real), _day0(done_b["committed"], real)
    assert (row_a["action"], row_a["amount_minor"]) == ("correction_invoiced", per_call)
    assert row_a["correction_invoice_id"]
    assert (row_b["action"], row_b["amount_minor"], row_b["correction_invoice_id"]) == ("unchanged", 0, None)
    assert done_b["committed"]["events_not_counted"] == 1
    [correction] = [i for i in real.invoices("acme") if i["kind"] == "correction"]
    assert (correction["id"], correction["subtotal_minor"]) == (row_a["correction_invoice_id"], per_call)
    _, explained = read(f"/v1/invoices/{correction['id']}/explain", invoice_id=correction["id"])
    [shown] = [ln for ln in explained["lines"] if ln["kind"] == "adjustment"]
    assert (shown["amount_minor"], shown["backfill"]["backfill_id"]) == (per_call, first)
    assert shown["backfill"]["reason"] == "resend voided 3"
    assert_books_agree(real, "acme")


def test_a_backfills_own_rerun_carrying_an_operator_void_names_each_for_its_part(
    world: World, billed: None, monkeypatch: Any
) -> None:
    from neruba import bootstrap
    from neruba.logic.ingest.voids import VoidRequest, void_event

    # GIVEN an operator's void of s0-0 (day 0, finalized), not billed yet
    void_event(
        VoidRequest("acme", "s0-0", "test traffic", "OPS-2"), "key:op", "v-s0-0", "req-v2", START + day(2, 6)
    )
    # WHEN an add backfill of two calls of day 0 commits: its rerun carries the void too
    backfill = _open("bf-a")
    _hold(backfill, "a-1", 6)
    _hold(backfill, "a-2", 7)
    done = act(backfill, "commit", key="ca")[1]

    # THEN the line (+1 call) names the backfill for +2 and the void's -1 as other; the record has +2
    [line] = _pending(world)
    assert (line["amount_minor"], _named(line), line["source"]["other_minor"]) == (
        PRICE,
        {backfill: 2 * PRICE},
        -PRICE,
    )
    assert _day0(done["committed"], world)["amount_minor"] == 2 * PRICE
    # AND the rerun's audit record names the backfill whose events it carried
    day0 = _day0(done["committed"], world)["invoice_id"]
    records, _ = bootstrap.audit().list("acme", limit=100)
    reruns = [a for a in records if a["action"] == "invoice.rerun" and a["target"] == day0]
    assert [a["after"].get("backfills") for a in reruns] == [[backfill]]
    assert_books_agree(world, "acme")


def test_a_level_carried_into_a_later_window_is_its_backfills_part_and_only_its(
    real: World, seats: dict[str, Any], monkeypatch: Any
) -> None:
    from datetime import timedelta

    from tests.functional.billing.test_prorated_meters import _seats

    seat_day = 2400  # the "team" plan: 24.00 per seat-day
    # GIVEN 2 seats from day 0; days 0 and 1 billed and finalized; backfill A adds a seat at 12:00 day 0
    _seats(START, 2)
    for d in range(3):
        schedule(real, START + day(d, 3))
        work(real, START + day(d, 3), monkeypatch)
    schedule(real, START + day(2, 5))

    def seat_backfill(key: str, tx: str, at: Any, d: int) -> str:
        body = scope(meter_codes=["seat_changes"], end=(START + day(2)).isoformat(), reason=key)
        status, bf = open_backfill(body, key=key)
        assert status == 201, bf
        held = [
            {
                "transaction_id": tx,
                "code": "seat_changes",
                "timestamp": at.isoformat(),
                "properties": {"d": d},
            }
        ]
        assert events(str(bf["id"]), held)[1]["held"] == 1
        return str(bf["id"])

    first = seat_backfill("bf-a", "seat-3", START + timedelta(hours=12), 1)
    done_a = act(first, "commit", key="ca")[1]
    assert [i["amount_minor"] for i in done_a["committed"]["invoices"]] == [seat_day // 2, seat_day]
    # WHEN backfill B removes a seat at 12:00 on day 1
    second = seat_backfill("bf-b", "seat-x", START + day(1, 12), -1)
    done_b = act(second, "commit", key="cb")[1]

    # THEN day 1's new line names B alone (A's carried level was recorded as A's, not taken again)
    assert [i["amount_minor"] for i in done_b["committed"]["invoices"]] == [-seat_day // 2]
    subscription = real.invoices("acme")[0]["subscription_id"]
    lines = [dict(a.line) for a in real.ctx.billing.adjustments(subscription)]
    assert sorted((ln["amount_minor"], tuple(_named(ln))) for ln in lines) == sorted(
        [(seat_day // 2, (first,)), (seat_day, (first,)), (-seat_day // 2, (second,))]
    )
    # AND B's revert, then A's, each report and name their own part; everything nets to zero
    rev_b = act(second, "revert", key="rb")[1]
    rev_a = act(first, "revert", key="ra")[1]
    assert [i["amount_minor"] for i in rev_b["reverted"]["invoices"]] == [seat_day // 2]
    assert [i["amount_minor"] for i in rev_a["reverted"]["invoices"]] == [-seat_day // 2, -seat_day]
    lines = [dict(a.line) for a in real.ctx.billing.adjustments(subscription)]
    assert sum(ln["amount_minor"] for ln in lines) == 0
    assert all(len(_named(ln)) == 1 for ln in lines)
    assert_books_agree(real, "acme")


def test_a_backfills_events_billed_first_by_the_next_windows_look_back_are_named_and_reported(
    world: World, billed: None, monkeypatch: Any
) -> None:
    from neruba.logic.billing import backfills as backfill_logic
    from neruba.logic.billing import worker
    from neruba.logic.billing.worker import process_job
    from neruba.models.billing import BillingJob
    from tests.functional.billing.helpers import queued

    # GIVEN an add backfill of two calls of day 0 (finalized) that stopped after counting them
    backfill = _open("bf-a", reason="collector down")
    _hold(backfill, "a-1", 6)
    _hold(backfill, "a-2", 7)
    _paused_after_counting(backfill, monkeypatch)
    # WHEN day 3's window is billed before the backfill's rerun (its look-back finds the two calls), its
    # first attempt killed at its transaction, then retried, then delivered once more
    now = START + day(3, 3)
    schedule(world, now)
    [body] = [b for b in queued(world.billing_queue) if b.get("subscription_id")]
    job = BillingJob.model_validate(body)
    commit = worker.commit
    killed: list[bool] = []

    def killed_once(unit: Any) -> Any:
        if not killed:
            killed.append(True)
            raise Killed
        return commit(unit)

    monkeypatch.setattr(worker, "commit", killed_once)
    with pytest.raises(Killed):
        process_job(world.ctx, job, now)
    monkeypatch.undo()
    assert len(process_job(world.ctx, job, now).invoiced) == 1
    assert process_job(world.ctx, job, now).invoiced == []

    # THEN the look-back's line names the backfill with its share, as a rerun's would
    [line] = _pending(world)
    assert line["amount_minor"] == 2 * PRICE
    assert _named(line) == {backfill: 2 * PRICE}
    assert line["source"]["backfill"]["reason"] == "collector down"
    # AND the backfill, going on, reports its +2 on day 0's invoice, billed on day 3's, though its own
    # rerun found nothing left; its part was recorded once
    done = act(backfill, "commit", key="ca")[1]
    row = _day0(done["committed"], world)
    [day3] = [i for i in world.invoices("acme") if any(ln["kind"] == "adjustment" for ln in i["lines"])]
    assert (row["action"], row["amount_minor"], row["correction_invoice_id"]) == (
        "adjustment_applied",
        2 * PRICE,
        day3["id"],
    )
    parts = backfill_logic.backfills(world.ctx).parts.of_invoice(row["invoice_id"])
    assert [p.backfill_id for p in parts] == [backfill]
    assert len(_pending(world)) == 1
    assert_books_agree(world, "acme")


def test_after_the_end_the_corrections_sweep_billing_a_backfill_first_names_it(
    real: World, monkeypatch: Any
) -> None:
    from neruba.logic.billing.corrections import late_corrections
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation
    from tests.functional.billing.conftest import subscribe_real

    per_call = 100  # the real world's "metered" plan
    # GIVEN a subscription ended on day 0, its final invoice billed; an add backfill of one call of day 0
    # that stopped after counting it
    sub = subscribe_real(real, "acme")
    live_events(real, ["s0-0"], START + day(0, 2), "live-0")
    cancel(real.plans, sub["id"], Cancellation(at_period_end=False), now=START + day(0, 20))
    schedule(real, START + day(0, 21))
    work(real, START + day(0, 21), monkeypatch)
    schedule(real, START + day(0, 23))
    backfill = _open("bf-a", reason="collector down", last=20)
    _hold(backfill, "a-1", 6)
    _paused_after_counting(backfill, monkeypatch)
    # WHEN the corrections sweep bills the late call before the backfill's rerun, then the backfill goes on
    [issued] = late_corrections(real.ctx, "acme", START + day(1, 2))
    assert late_corrections(real.ctx, "acme", START + day(1, 3)) == []  # once
    done = act(backfill, "commit", key="ca")[1]

    # THEN the correction invoice's line names the backfill, and its record reports the correction
    [correction] = [i for i in real.invoices("acme") if i["kind"] == "correction"]
    assert correction["id"] == issued["invoice_id"]
    [shown] = [ln for ln in correction["lines"] if ln["kind"] == "adjustment"]
    assert _named(shown) == {backfill: per_call}
    row = _day0(done["committed"], real)
    assert (row["action"], row["amount_minor"], row["correction_invoice_id"]) == (
        "correction_invoiced",
        per_call,
        correction["id"],
    )
    assert_books_agree(real, "acme")
