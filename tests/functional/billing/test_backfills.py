"""Backfills through the billing API: open (idempotent, audited, refused with a code outside its rules),
events held apart (nothing counted until the commit, each transaction id held once), the preview per
invoice, the commit (counted once, finalized invoices corrected on the next invoice, explain names the
backfill), cancel, list and read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from neruba.settings import get_settings
from tests.functional.billing.backfill_support import (
    PRICE,
    act,
    billed_days,
    calls,
    events,
    open_backfill,
    read,
    scope,
    usage_totals,
)
from tests.functional.billing.conftest import BASIC, START, World, assert_books_agree
from tests.functional.billing.helpers import day, schedule, work


def _p(n: int) -> str:
    """The stored period start of day ``n``."""
    from neruba.timefmt import ts

    return ts(START + day(n))


def _audits(customer: str = "acme") -> list[dict[str, Any]]:
    from neruba.dal.audit import AuditRepository

    records, _ = AuditRepository(get_settings().ops_table).list(customer, 100)
    return [r for r in records if str(r["action"]).startswith("backfill.")]


def test_open_is_idempotent_audited_and_listed(world: World) -> None:
    # WHEN a backfill is opened, then the same request again
    status, opened = open_backfill(scope())
    again = open_backfill(scope())

    # THEN one open backfill, the same answer, one audit record
    assert status == 201, opened
    assert again == (201, opened)
    assert (opened["status"], opened["mode"], opened["events_held"]) == ("open", "add", 0)
    assert opened["customer_ids"] == ["acme"] and opened["meter_codes"] == ["api_calls"]
    assert [a["action"] for a in _audits()] == ["backfill.open"]
    status, listed = read("/admin/backfills")
    assert status == 200 and [b["id"] for b in listed["data"]] == [opened["id"]]
    status, one = read(f"/admin/backfills/{opened['id']}", backfill_id=opened["id"])
    assert status == 200 and one["status"] == "open"
    # the same key with another body is a conflict
    status, answer = open_backfill(scope(reason="another"))
    assert (status, answer["error"]["code"]) == (409, "idempotency_conflict")


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"end": (datetime.now(UTC) + timedelta(days=1)).isoformat()}, 400, "backfill_range_in_future"),
        ({"start": (START + day(5)).isoformat()}, 400, "backfill_range_reversed"),
        ({"start": (datetime.now(UTC) - timedelta(days=401)).isoformat()}, 400, "backfill_range_too_old"),
        (
            {"mode": "replace", "end": (START + day(0, 1)).replace(minute=30).isoformat()},
            400,
            "backfill_replace_whole_hours",
        ),
        ({"customer_ids": ["nobody"]}, 404, "customer_not_found"),
        ({"meter_codes": ["nothing"]}, 404, "meter_not_found"),
    ],
)
def test_a_scope_outside_the_rules_is_refused_and_nothing_is_written(
    world: World, change: dict[str, Any], status: int, code: str
) -> None:
    got, answer = open_backfill(scope(**change))
    assert (got, answer["error"]["code"]) == (status, code)
    assert read("/admin/backfills")[1]["data"] == []
    assert _audits() == []


def test_a_meter_is_refused_only_for_customers_whose_phase_bills_it_in_advance_in_the_range(
    world: World,
) -> None:
    from neruba.logic.catalog.entries import create_plan
    from neruba.models.catalog import PlanCreate

    # GIVEN acme billed api_calls in arrears ("basic" from START), and a plan billing them in advance
    # (seat-like: a charge at once per call) that globex takes from day 2, 00:30
    world.subscribe("acme")
    advance = {**BASIC, "code": "upfront",
               "charges": [{**BASIC["charges"][0], "pay_in_advance": True}]}  # fmt: skip
    create_plan(world.plans, PlanCreate.model_validate(advance))
    begins = START + day(2) + timedelta(minutes=30)
    phase = {"plan_code": "upfront", "plan_version": 1, "start_at": begins.isoformat(), "end_at": None}
    world.subscribe("globex", begins, phases=[phase])

    # WHEN acme's api_calls are backfilled over days 0 to 3: accepted (its phase bills them in arrears)
    status, opened = open_backfill(scope())
    assert status == 201, opened
    # AND globex's over days 0 and 1 (before its advance phase): accepted
    status, early = open_backfill(
        scope(customer_ids=["globex"], end=(START + day(2)).isoformat()), key="k-g1"
    )
    assert status == 201, early
    # BUT ending at day 2, 00:10 it is refused, though before globex's start: that hour is the advance
    # phase's whole (usage is kept per hour, and a subscription's first hour is its own)
    into = scope(customer_ids=["globex"], end=(START + day(2) + timedelta(minutes=10)).isoformat())
    assert open_backfill(into, key="k-g5")[1]["error"]["code"] == "backfill_meter_in_advance"
    # AND globex's over days 0 to 3, or with acme's: refused, naming globex (its events of days 2 and 3
    # are billed one by one as they come, never by a window a backfill corrects)
    for n, body in enumerate((scope(customer_ids=["globex"]), scope(customer_ids=["acme", "globex"]))):
        status, answer = open_backfill(body, key=f"k-g{n + 2}")
        assert (status, answer["error"]["code"], answer["error"]["param"]) == (
            400,
            "backfill_meter_in_advance",
            "meter_codes.0",
        )
        assert "globex" in answer["error"]["message"]
    assert {b["id"] for b in read("/admin/backfills")[1]["data"]} == {opened["id"], early["id"]}


def test_four_hundred_days_back_is_allowed_and_a_key_is_required(world: World) -> None:
    start = datetime.now(UTC) - timedelta(days=399, hours=23)
    status, answer = open_backfill(scope(start=start.isoformat()), key=None)
    assert (status, answer["error"]["code"]) == (400, "idempotency_key_required")
    status, opened = open_backfill(scope(start=start.isoformat()))
    assert status == 201, opened


def _open_at(start: datetime, now: datetime, key: str) -> dict[str, Any]:
    """Open acme's backfill from ``start`` with the server's clock at ``now`` (the logic the route calls)."""
    from neruba import bootstrap
    from neruba.logic.billing.backfills import open_backfill as open_logic
    from neruba.models.backfills import BackfillCreate

    body = BackfillCreate.model_validate(scope(start=start.isoformat(), end=(start + day(1)).isoformat()))
    return open_logic(bootstrap.billing(), body, "key:ops", key, now=now)


@pytest.mark.parametrize("late_ms", [0, 3, 900, 59_000])
def test_a_start_computed_by_the_client_as_now_minus_400_days_is_accepted(world: World, late_ms: int) -> None:
    # GIVEN a client that computed start = its now - 400 days; the server's now is a little later
    client_now = datetime(2026, 12, 1, 20, 15, 30, 123000, tzinfo=UTC)
    server_now = client_now + timedelta(milliseconds=late_ms)
    # WHEN the backfill is opened
    opened = _open_at(client_now - timedelta(days=400), server_now, f"bf-late-{late_ms}")
    # THEN it is accepted (the limit is judged on whole UTC days)
    assert opened["status"] == "open"


def test_the_400_day_limit_is_00_00_utc_of_the_day_400_days_before_today(world: World) -> None:
    from neruba.errors import InvalidRequestError

    now = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)
    limit = datetime(2025, 10, 27, tzinfo=UTC)  # 2026-12-01 less 400 days
    assert (now.date() - limit.date()).days == 400
    # the first instant of that day is accepted, whatever the time of day now
    assert _open_at(limit, now, "bf-edge")["status"] == "open"
    assert _open_at(limit, now.replace(hour=23, minute=59, second=59), "bf-edge-late")["status"] == "open"
    # the instant before it is refused, the message naming the limit
    with pytest.raises(InvalidRequestError) as refused:
        _open_at(limit - timedelta(microseconds=1), now, "bf-too-old")
    assert (refused.value.code, refused.value.param) == ("backfill_range_too_old", "start")
    assert "2025-10-27T00:00:00Z" in refused.value.message


def test_held_events_count_nothing_until_the_commit(world: World, monkeypatch: Any) -> None:
    # GIVEN days 0 and 1 billed and finalized: 3 and 4 calls
    billed_days(world, monkeypatch, [3, 4])
    before = usage_totals(world)
    _, bf = open_backfill(scope())

    # WHEN 5 calls of day 0 and 2 of day 1 are sent into it (one of them twice, one id with another body)
    sent = calls("d0", START + day(0, 5), 5) + calls("d1", START + day(1, 7), 2)
    status, result = events(bf["id"], sent)
    _, again = events(bf["id"], [sent[0], {**sent[1], "properties": {"x": "1"}}])

    # THEN they are held; the repeat is a duplicate, the other body a conflict; nothing counted
    assert status == 200, result
    assert [e["status"] for e in result["events"]] == ["held"] * 7
    assert [e["status"] for e in again["events"]] == ["duplicate", "conflict"]
    assert read(f"/admin/backfills/{bf['id']}", backfill_id=bf["id"])[1]["events_held"] == 7
    assert usage_totals(world) == before
    terms = world.ctx.subscription(world.subscriptions[0]["id"]).timeline
    rated = world.ctx.rate_window(terms, START, START + day(1))
    assert rated.subtotal_minor == 3 * PRICE


def test_events_outside_the_backfill_are_rejected_with_a_code(world: World) -> None:
    _, bf = open_backfill(scope())
    status, result = events(
        bf["id"],
        [
            {"transaction_id": "late", "timestamp": (START + day(4)).isoformat()},
            {"transaction_id": "notime"},
            {"transaction_id": "other", "timestamp": START.isoformat(), "code": "storage"},
            {"transaction_id": "bad", "timestamp": START.isoformat(), "extra": 1},
            {"transaction_id": "future", "timestamp": "2099-01-01T00:00:00Z"},
            {"transaction_id": "ancient", "timestamp": "2001-01-01T00:00:00Z"},
        ],
    )
    assert status == 200
    codes = [(e["status"], e["error"]["code"], e["error"]["param"]) for e in result["events"]]
    # the range rules come before ingest's window (in the future, too old): outside the range says so
    assert codes == [
        ("rejected", "timestamp_outside_backfill", "events.0.timestamp"),
        ("rejected", "missing_field", "events.1.timestamp"),
        ("rejected", "meter_not_in_backfill", "events.2.code"),
        ("rejected", "unknown_field", "events.3.extra"),
        ("rejected", "timestamp_outside_backfill", "events.4.timestamp"),
        ("rejected", "timestamp_outside_backfill", "events.5.timestamp"),
    ]
    status, result = events(
        bf["id"], [{"transaction_id": "g", "timestamp": START.isoformat()}], customer="globex"
    )
    assert result["events"][0]["error"]["code"] == "customer_not_in_backfill"


def test_preview_shows_each_invoice_before_and_after(world: World, monkeypatch: Any) -> None:
    billed_days(world, monkeypatch, [3, 4])
    _, bf = open_backfill(scope())
    events(bf["id"], calls("d0", START + day(0, 5), 5) + calls("d1", START + day(1, 7), 2))

    status, preview = read(f"/admin/backfills/{bf['id']}/preview", backfill_id=bf["id"])

    assert status == 200, preview
    rows = [
        (r["before_minor"], r["after_minor"], r["difference_minor"], r["applied_as"])
        for r in preview["invoices"]
    ]
    assert rows == [(30, 80, 50, "adjustment_pending"), (40, 60, 20, "adjustment_pending")]
    assert (preview["events_held"], preview["events_counted"], preview["difference_minor"]) == (7, 7, 70)
    # a preview changes nothing
    assert usage_totals(world) == {_p(0): 30, _p(1): 40}


def test_commit_counts_once_and_corrects_on_the_next_invoice(world: World, monkeypatch: Any) -> None:
    # GIVEN days 0 and 1 billed and finalized, a backfill of 5 + 2 calls
    billed_days(world, monkeypatch, [3, 4])
    _, bf = open_backfill(scope())
    events(bf["id"], calls("d0", START + day(0, 5), 5) + calls("d1", START + day(1, 7), 2))

    # WHEN it is committed, then committed again with another key
    status, done = act(bf["id"], "commit")
    again_status, again = act(bf["id"], "commit", key="c-2")

    # THEN committed once: 7 events counted, two pending adjustments (+50, +20)
    assert status == 200, done
    assert done["status"] == "committed"
    assert done["committed"]["events_counted"] == 7
    assert [(i["action"], i["amount_minor"]) for i in done["committed"]["invoices"]] == [
        ("adjustment_pending", 50),
        ("adjustment_pending", 20),
    ]
    assert (again_status, again["status"], again["committed"]) == (200, "committed", done["committed"])
    audits = _audits()
    sent = [a for a in audits if a["action"] == "backfill.events_add"]
    assert sorted(a["action"] for a in audits) == ["backfill.commit", *["backfill.events_add"] * len(sent),
                                                   "backfill.open"]  # fmt: skip
    assert sent and sum(int((a.get("after") or {})["held"]) for a in sent) == 7  # who sent which events
    # events sent afterwards are refused: the backfill is closed
    status, late = events(bf["id"], calls("more", START + day(0, 6), 1))
    assert (status, late["error"]["code"]) == (409, "backfill_not_open")

    # WHEN the next window is billed
    at = START + day(3, 3)
    schedule(world, at)
    work(world, at, monkeypatch)

    # THEN the invoices carry every call once: 8 on day 0, 6 on day 1
    totals = usage_totals(world)
    assert totals[_p(0)] == 8 * PRICE and totals[_p(1)] == 6 * PRICE
    assert_books_agree(world, "acme")
    # AND explain names the backfill on each adjustment line
    carrying = [i for i in world.invoices("acme") if any(ln["kind"] == "adjustment" for ln in i["lines"])]
    assert len(carrying) == 1
    status, explained = read(f"/v1/invoices/{carrying[0]['id']}/explain", invoice_id=carrying[0]["id"])
    shown = [ln for ln in explained["lines"] if ln["kind"] == "adjustment"]
    assert [ln["backfill"]["backfill_id"] for ln in shown] == [bf["id"], bf["id"]]
    assert shown[0]["backfill"]["ticket"] == "OPS-7"


def test_a_draft_is_recomputed_in_place(world: World, monkeypatch: Any) -> None:
    # GIVEN day 0 billed as a draft not finalized yet
    world.subscribe("acme")
    world.usage("acme", START + day(0, 2), 3)
    for at in (START, START + day(1)):
        schedule(world, at)
        work(world, at, monkeypatch)
    [draft] = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    assert draft["status"] == "draft"
    _, bf = open_backfill(scope())
    events(bf["id"], calls("d0", START + day(0, 5), 2))

    status, preview = read(f"/admin/backfills/{bf['id']}/preview", backfill_id=bf["id"])
    assert [(r["applied_as"], r["before_minor"], r["after_minor"]) for r in preview["invoices"]] == [
        ("draft_recomputed", 30, 50)
    ]
    status, done = act(bf["id"], "commit")

    assert status == 200 and done["committed"]["invoices"][0]["action"] == "draft_recomputed"
    [revised] = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    assert revised["subtotal_minor"] == 50
    assert_books_agree(world, "acme")


def test_cancel_an_open_backfill(world: World, monkeypatch: Any) -> None:
    billed_days(world, monkeypatch, [3])
    _, bf = open_backfill(scope())
    events(bf["id"], calls("d0", START + day(0, 5), 5))

    status, cancelled = act(bf["id"], "cancel", key="x-1")
    again = act(bf["id"], "cancel", key="x-1")

    assert status == 200 and cancelled["status"] == "cancelled"
    assert again == (200, cancelled)
    status, answer = act(bf["id"], "commit")
    assert (status, answer["error"]["code"]) == (409, "backfill_cancelled")
    status, answer = act(bf["id"], "cancel", key="x-2")
    assert (status, answer["error"]["code"]) == (409, "backfill_not_open")
    assert usage_totals(world) == {_p(0): 30}
    assert read("/admin/backfills")[1]["data"][0]["status"] == "cancelled"


def test_unknown_backfill_is_404(world: World) -> None:
    missing = "bf_" + "0" * 24
    status, answer = read(f"/admin/backfills/{missing}", backfill_id=missing)
    assert (status, answer["error"]["code"]) == (404, "backfill_not_found")


def test_a_customer_with_an_invoice_threshold_is_checked_after_the_commit(world: World) -> None:
    from neruba.models.catalog import Customer
    from tests.functional.billing.helpers import queued

    world.plans.create_customer(
        Customer(external_id="capped", name="Capped", currency="USD", invoice_threshold_minor=500)
    )
    world.subscribe("capped")
    _, bf = open_backfill(scope(customer_ids=["capped", "acme"]))
    events(bf["id"], calls("c", START + day(0, 5), 3), customer="capped")
    events(bf["id"], calls("a", START + day(0, 5), 3))
    assert [m for m in queued(world.billing_queue) if "check" in m] == []

    status, done = act(bf["id"], "commit")

    assert status == 200 and done["committed"]["events_counted"] == 6
    checks = [m for m in queued(world.billing_queue) if "check" in m]
    assert [m["customer_id"] for m in checks] == ["capped"]  # acme has no threshold


def test_preview_shows_the_current_period_to_date(world: World, monkeypatch: Any) -> None:
    # GIVEN acme on a monthly plan, its current period not invoiced, 2 calls an hour ago in it
    world.subscribe("acme")
    now = datetime.now(UTC)
    _, bf = open_backfill(scope(start=(now - timedelta(days=3)).isoformat(), end=now.isoformat()))
    events(bf["id"], calls("now", now - timedelta(hours=1), 4))

    status, preview = read(f"/admin/backfills/{bf['id']}/preview", backfill_id=bf["id"])

    assert status == 200 and preview["invoices"] == []
    [period] = preview["open_periods"]
    assert (period["customer_id"], period["difference_minor"]) == ("acme", 4 * PRICE)
    assert period["after_minor"] - period["before_minor"] == 4 * PRICE
    assert preview["difference_minor"] == 4 * PRICE
    # the upcoming invoice shows them once committed
    from neruba.logic.billing.upcoming import upcoming_invoice

    act(bf["id"], "commit")
    upcoming = upcoming_invoice(world.plans, world.ctx.usage, "acme", billing=world.ctx.billing)
    assert upcoming["windows"][0]["subtotal_minor"] == period["after_minor"]


def test_a_key_names_one_action_a_commit_key_cannot_revert_nor_a_revert_key_commit(
    world: World, monkeypatch: Any
) -> None:
    billed_days(world, monkeypatch, [3, 4])
    first, second = (open_backfill(scope(), key=f"x{n}")[1]["id"] for n in range(2))
    events(first, calls("k", START + day(0, 5), 1))
    # GIVEN a backfill committed with a key
    assert act(first, "commit", key="c-1")[0] == 200
    # WHEN the commit's key is sent on the same backfill's revert, with the same body
    status, answer = act(first, "revert", key="c-1")
    # THEN the key names the commit: 409, nothing reverted
    assert (status, answer["error"]["code"]) == (409, "idempotency_conflict")
    assert read(f"/admin/backfills/{first}", backfill_id=first)[1]["status"] == "committed"
    # AND a revert's key cannot commit another backfill
    assert act(first, "revert", key="r-1")[0] == 200
    status, answer = act(second, "commit", key="r-1")
    assert (status, answer["error"]["code"]) == (409, "idempotency_conflict")
    assert read(f"/admin/backfills/{second}", backfill_id=second)[1]["status"] == "open"


@pytest.mark.parametrize("action", ["commit", "revert"])
def test_a_commit_or_revert_key_names_one_request(world: World, monkeypatch: Any, action: str) -> None:
    billed_days(world, monkeypatch, [3, 4])
    first, second = (open_backfill(scope(), key=f"o{n}")[1]["id"] for n in range(2))
    events(first, calls("k", START + day(0, 5), 1))
    if action == "revert":
        assert act(first, "commit")[0] == 200 and act(second, "commit")[0] == 200
    # the first request with the key: done, and the same request again is answered the same way
    assert act(first, action, key="k-1")[0] == 200
    status, again = act(first, action, key="k-1")
    assert status == 200 and again["status"] in ("committed", "reverted")
    # the same key with another body, or on another backfill: the key names another request
    status, other = act(first, action, key="k-1", body={"reason": "another reason"})
    assert (status, other["error"]["code"]) == (409, "idempotency_conflict")
    status, other = act(second, action, key="k-1")
    assert (status, other["error"]["code"]) == (409, "idempotency_conflict")
    assert read(f"/admin/backfills/{second}", backfill_id=second)[1]["status"] == (
        "open" if action == "commit" else "committed"
    )


def test_a_commit_checks_again_whose_phases_bill_the_meter_in_advance(world: World) -> None:
    from neruba.logic.catalog.entries import create_plan
    from neruba.models.catalog import PlanCreate

    # GIVEN globex's api_calls backfill over days 0 and 1, opened while no phase billed them, one event held
    advance = {**BASIC, "code": "upfront", "charges": [{**BASIC["charges"][0], "pay_in_advance": True}]}
    create_plan(world.plans, PlanCreate.model_validate(advance))
    status, opened = open_backfill(scope(customer_ids=["globex"], end=(START + day(2)).isoformat()))
    assert status == 201, opened
    assert events(opened["id"], [{"transaction_id": "g1", "timestamp": (START + day(1, 2)).isoformat()}],
                  customer="globex")[0] == 200  # fmt: skip

    # WHEN globex is then subscribed to a plan billing them in advance from day 1, 00:30, and it is committed
    begins = START + day(1) + timedelta(minutes=30)
    phase = {"plan_code": "upfront", "plan_version": 1, "start_at": begins.isoformat(), "end_at": None}
    world.subscribe("globex", begins, phases=[phase])
    preview = read(f"/admin/backfills/{opened['id']}/preview", backfill_id=opened["id"])
    status, answer = act(opened["id"], "commit")

    # THEN the preview says so (the review step), and the commit is refused and counts nothing: the event
    # would be counted in an advance hour, which no advance billing ever sees (billed nowhere)
    assert (preview[0], preview[1]["error"]["code"]) == (400, "backfill_meter_in_advance"), preview
    assert (status, answer["error"]["code"]) == (400, "backfill_meter_in_advance"), answer
    assert read(f"/admin/backfills/{opened['id']}", backfill_id=opened["id"])[1]["status"] == "open"
