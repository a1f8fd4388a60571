"""Money across the subscription lifecycle, end to end: plans, subscriptions, cancellations and plan
changes through the admin API handler, previews through the read API handler, invoices from the real
scheduler and billing worker (real pricing engine, real ledger, monthly periods) on moto.

Every expected amount is computed here by hand with plain Decimal arithmetic from the timestamps the API
returned (a fee prorated over [a, b) is ``fee x seconds(a, b) / seconds(period)``, rounded half-up to the
cent once per line), never by calling the pricing code.

The catalog acts at the real clock (the handlers take no "now"), so each subscription is placed in the
past relative to the moment the test starts; billing runs on an injected clock after those moments.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import boto3
import pytest

from neruba.dal.dynamo import to_item
from neruba.settings import get_settings
from tests.functional.billing.conftest import World
from tests.functional.billing.helpers import schedule, stored_invoice, work
from tests.support.api import api_event, call

Api = Callable[..., tuple[int, Any]]
HOUR = timedelta(hours=1)


# ------------------------------------------------------------------ hand arithmetic (no pricing code)
def cents(amount: Decimal) -> int:
    """Major units to cents, half-up (the documented rounding of one line)."""
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def secs(a: datetime, b: datetime) -> Decimal:
    """Exact seconds of [a, b) (microsecond resolution)."""
    delta = b - a
    return Decimal(delta.days * 86_400 + delta.seconds) + Decimal(delta.microseconds) / Decimal(10**6)


def prorated(fee: str, part: tuple[datetime, datetime], period: tuple[datetime, datetime]) -> int:
    return cents(Decimal(fee) * secs(*part) / secs(*period))


def month_after(at: datetime) -> datetime:
    """The same day and time one calendar month later (tests keep the day at 28 or less)."""
    assert at.day <= 28
    return at.replace(year=at.year + at.month // 12, month=at.month % 12 + 1)


def month_before(at: datetime) -> datetime:
    assert at.day <= 28
    return at.replace(year=at.year - (at.month == 1), month=(at.month - 2) % 12 + 1)


def day_28_or_less(at: datetime) -> datetime:
    """``at`` moved back to the 28th when it falls on the 29th-31st (so months never clamp)."""
    return at - timedelta(days=max(0, at.day - 28))


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# ------------------------------------------------------------------ the stack
@pytest.fixture
def admin(catalog: Any) -> Api:
    from functions.admin_api.app import lambda_handler

    def _admin(method: str, path: str, body: Any = None, **params: str) -> tuple[int, Any]:
        status, parsed, _ = call(
            lambda_handler, api_event(method, path, body=body, path_parameters=params, scopes="admin")
        )
        return status, parsed

    return _admin


@pytest.fixture
def reader(catalog: Any) -> Api:
    from functions.read_api.app import lambda_handler

    def _read(path: str, **params: str) -> tuple[int, Any]:
        status, parsed, _ = call(
            lambda_handler, api_event("GET", path, path_parameters=params, scopes="read")
        )
        return status, parsed

    return _read


@pytest.fixture
def billing(catalog: Any, monkeypatch: Any) -> World:
    """The real billing context (real rater, ledger, production monthly periods)."""
    from neruba import bootstrap
    from neruba.dal.billing import BillingRepository
    from neruba.dal.invoices import InvoicesRepository
    from neruba.dal.ledger import LedgerRepository
    from neruba.dal.locks import LockRepository
    from neruba.dal.plans import PlansRepository
    from neruba.dal.usage import UsageRepository
    from neruba.logic.billing.context import Billing
    from tests.support.aws import queue_url

    settings = get_settings()
    plans = PlansRepository(settings.catalog_table)
    ctx = Billing(
        billing=BillingRepository(settings.billing_table),
        invoices=InvoicesRepository(settings.billing_table),
        plans=plans,
        usage=UsageRepository(settings.usage_table),
        ledger=LedgerRepository(settings.ledger_table),
        grace=timedelta(seconds=settings.billing_grace_seconds),
        ops_table=settings.ops_table,
        billing_queue_url=settings.billing_queue_url,
        sync_queue_url=settings.stripe_sync_queue_url,
        catalog_table=settings.catalog_table,
    )
    bootstrap.install(billing=ctx)
    return World(
        ctx,
        plans,
        LockRepository(settings.billing_table),
        queue_url("BillingQueue"),
        queue_url("StripeSyncQueue"),
    )


def bill(world: World, at: datetime, monkeypatch: Any) -> None:
    """One scheduler run and the worker draining the billing queue, both at ``at``."""
    schedule(world, at)
    work(world, at, monkeypatch)


def invoices_of(world: World, customer_id: str) -> list[dict[str, Any]]:
    return world.invoices(customer_id)


def amounts(invoice: dict[str, Any]) -> dict[str, int]:
    return {line["line_id"]: int(line["amount_minor"]) for line in invoice["lines"]}


def publish(admin: Api, code: str, **body: Any) -> None:
    plan = {"code": code, "name": code.title(), "currency": "USD", "interval": "month", "charges": [], **body}
    status, created = admin("POST", "/v1/plans", plan)
    assert status == 201, created


def subscribe(admin: Api, start: datetime, plan: str = "pro", **extra: Any) -> dict[str, Any]:
    body = {"customer_id": "acme", "plan_code": plan, "start_at": start.isoformat(), **extra}
    status, sub = admin("POST", "/v1/subscriptions", body)
    assert status == 201, sub
    return sub


def cancel_now(admin: Api, sub: dict[str, Any]) -> datetime:
    """Cancel immediately through the API; the instant it ended."""
    status, canceled = admin(
        "POST", f"/v1/subscriptions/{sub['id']}/cancel", {"at_period_end": False}, subscription_id=sub["id"]
    )
    assert status == 200 and canceled["status"] == "canceled", canceled
    return ts(canceled["ended_at"])


def usage(customer_id: str, hour: datetime, calls: int) -> None:
    """The api_calls aggregate of one hour, as the ingest worker stores it."""
    boto3.client("dynamodb").put_item(
        TableName=get_settings().usage_table,
        Item=to_item(
            {"pk": f"AGG#{customer_id}#api_calls", "sk": hour.strftime("%Y-%m-%dT%H") + "#", "n": calls}
        ),
    )


# ------------------------------------------------------------------ 1. immediate cancellation
def test_advance_plan_canceled_half_way_credits_the_unused_fee(
    admin: Api, billing: World, monkeypatch: Any
) -> None:
    # GIVEN a 30.00 advance plan, subscribed about half a month ago; the opening invoice billed 30.00
    publish(admin, "pro", fixed_fee={"amount": "30.00", "timing": "advance"})
    start = day_28_or_less(datetime.now(UTC) - timedelta(days=15)).replace(microsecond=0)
    end = month_after(start)
    sub = subscribe(admin, start)
    bill(billing, start + HOUR, monkeypatch)
    (opening,) = invoices_of(billing, "acme")
    assert amounts(opening) == {"fixed_fee:advance:0": 3000}

    # WHEN it is canceled now, and its final window is billed
    ended = cancel_now(admin, sub)
    bill(billing, ended + HOUR, monkeypatch)

    # THEN the final invoice credits the fee for [ended, end) of the whole period [start, end)
    final = invoices_of(billing, "acme")[-1]
    credit = -prorated("30.00", (ended, end), (start, end))
    assert credit < -1000  # about half of 3000
    assert amounts(final) == {"proration:credit:0": credit}
    assert final["subtotal_minor"] == credit
    # AND in all the customer paid 30.00 for the time used: 3000 x (ended - start) / period, within a cent
    assert abs(3000 + credit - prorated("30.00", (start, ended), (start, end))) <= 1


def test_arrears_fee_and_minimum_are_prorated_to_the_cancellation(
    admin: Api, billing: World, monkeypatch: Any
) -> None:
    # GIVEN a plan with a 20.00 arrears fee, a 50.00 minimum and calls at 0.10; 40 calls so far
    publish(
        admin,
        "pro",
        fixed_fee={"amount": "20.00", "timing": "arrears"},
        minimum_commitment="50.00",
        charges=[{"meter_code": "api_calls", "model": "per_unit", "unit_price": "0.10"}],
    )
    start = day_28_or_less(datetime.now(UTC) - timedelta(days=12)).replace(microsecond=0)
    end = month_after(start)
    sub = subscribe(admin, start)
    usage("acme", start + timedelta(days=2), 40)

    # WHEN it is canceled now and the final window is billed
    ended = cancel_now(admin, sub)
    bill(billing, ended + HOUR, monkeypatch)

    # THEN the arrears fee covers [start, ended) of the period, the minimum likewise (prorated before
    # rounding), and the top-up is the prorated minimum less the 4.00 of usage
    final = invoices_of(billing, "acme")[-1]
    fee = prorated("20.00", (start, ended), (start, end))
    floor = prorated("50.00", (start, ended), (start, end))
    used = cents(Decimal(40) * Decimal("0.10"))
    assert used == 400 and floor > used
    assert amounts(final) == {
        "usage:api_calls::0": used,
        "fixed_fee:arrears:0": fee,
        "minimum_commitment": floor - used,
    }
    assert final["subtotal_minor"] == fee + floor


def test_cancel_during_a_trial_costs_nothing(admin: Api, billing: World, monkeypatch: Any) -> None:
    # GIVEN a 30.00 advance plan with a trial to 20 days after the start, started 10 days ago: the
    # opening invoice billed the paid part [trial_end, end)
    publish(admin, "pro", fixed_fee={"amount": "30.00", "timing": "advance"})
    start = day_28_or_less(datetime.now(UTC) - timedelta(days=10)).replace(microsecond=0)
    end, trial_end = month_after(start), start + timedelta(days=20)
    sub = subscribe(admin, start, trial_end=trial_end.isoformat())
    bill(billing, start + HOUR, monkeypatch)
    (opening,) = invoices_of(billing, "acme")
    paid_part = prorated("30.00", (trial_end, end), (start, end))
    assert amounts(opening) == {"fixed_fee:advance:0": paid_part}

    # WHEN it is canceled now, still in the trial, and billed
    ended = cancel_now(admin, sub)
    assert ended < trial_end
    bill(billing, ended + HOUR, monkeypatch)

    # THEN the prepaid paid part is credited back whole: the trial cost nothing
    final = invoices_of(billing, "acme")[-1]
    assert amounts(final) == {"proration:credit:0": -paid_part}
    assert sum(i["subtotal_minor"] for i in invoices_of(billing, "acme")) == 0


def test_a_rerun_of_the_final_invoice_rates_it_the_same_way(
    admin: Api, billing: World, monkeypatch: Any
) -> None:
    from functions.billing_api.app import lambda_handler as billing_api

    # GIVEN a 30.00 advance plan canceled now, its final window billed (a draft)
    publish(admin, "pro", fixed_fee={"amount": "30.00", "timing": "advance"})
    start = day_28_or_less(datetime.now(UTC) - timedelta(days=15)).replace(microsecond=0)
    end = month_after(start)
    sub = subscribe(admin, start)
    bill(billing, start + HOUR, monkeypatch)
    ended = cancel_now(admin, sub)
    bill(billing, ended + HOUR, monkeypatch)
    final = invoices_of(billing, "acme")[-1]
    credit = -prorated("30.00", (ended, end), (start, end))

    def rerun() -> dict[str, Any]:
        path = f"/admin/invoices/{final['id']}/rerun"
        event = api_event("POST", path, body={"reason": "check"}, path_parameters={"invoice_id": final["id"]})
        status, body, _ = call(billing_api, event)
        assert status == 200, body
        return body

    # WHEN an operator reruns the draft, then (after finalization) the finalized invoice
    draft_rerun = rerun()
    schedule(billing, ended + 3 * HOUR)  # the grace (1 h) has passed: finalized
    assert stored_invoice(billing, final["id"]).status == "finalized"
    final_rerun = rerun()

    # THEN both find the invoice right (the credit over [ended, end) of the whole period): nothing changes
    assert draft_rerun["action"] == final_rerun["action"] == "unchanged"
    assert amounts(stored_invoice(billing, final["id"]).document) == {"proration:credit:0": credit}
    assert billing.ctx.billing.adjustments(sub["id"]) == []


# ------------------------------------------------------------------ 5. a plan change at a period start
def test_plan_change_at_a_period_start_after_its_previous_window_was_billed(
    admin: Api, reader: Api, billing: World, monkeypatch: Any
) -> None:
    # GIVEN pro (30.00 in advance) and max (60.00 in advance); a subscription to pro whose second period
    # began 5 days ago; the first period's window was billed and finalized at that boundary (its invoice
    # carries the second period's advance fee under pro)
    publish(admin, "pro", fixed_fee={"amount": "30.00", "timing": "advance"})
    publish(admin, "max", fixed_fee={"amount": "60.00", "timing": "advance"})
    boundary = day_28_or_less(datetime.now(UTC) - timedelta(days=5)).replace(microsecond=0)
    start, following = month_before(boundary), month_after(boundary)
    sub = subscribe(admin, start)
    bill(billing, boundary + HOUR, monkeypatch)
    schedule(billing, boundary + 3 * HOUR)  # finalized
    first = invoices_of(billing, "acme")[-1]
    assert (first["status"], amounts(first)) == ("finalized", {"fixed_fee:advance:0": 3000})

    # WHEN the plan moves to max exactly at the boundary (now, after that window was billed)
    status, changed = admin(
        "POST",
        f"/v1/subscriptions/{sub['id']}/change-plan",
        {"plan_code": "max", "at": boundary.isoformat()},
        subscription_id=sub["id"],
    )
    assert status == 200, changed
    # AND the customer previews the upcoming invoice, then the second period is billed
    status, upcoming = reader("/v1/customers/acme/upcoming-invoice", customer_id="acme")
    assert status == 200
    (preview,) = upcoming["windows"]
    bill(billing, following + HOUR, monkeypatch)
    second = invoices_of(billing, "acme")[-1]

    # THEN the second period's own invoice swaps pro's prepaid 30.00 for max's 60.00 over that period and
    # bills the third period's 60.00 in advance: -3000 + 6000 + 6000, with no adjustment of the old invoice
    expected = {"proration:credit:0": -3000, "proration:charge:1": 6000, "fixed_fee:advance:1": 6000}
    assert amounts(second) == expected
    assert second["subtotal_minor"] == 9000
    assert billing.ctx.billing.adjustments(sub["id"]) == []
    # AND the preview said exactly that
    assert {line["line_id"]: line["amount_minor"] for line in preview["lines"]} == expected
    assert preview["subtotal_minor"] == second["subtotal_minor"]


# ------------------------------------------------------------------ 6. the state after the end
def test_cancel_at_period_end_reads_ended_after_its_period_and_refuses_changes(
    admin: Api, reader: Api, billing: World, monkeypatch: Any
) -> None:
    # GIVEN a yearly 120.00 advance plan whose first year ends three seconds from now, canceled at period end
    publish(admin, "yearly", interval="year", fixed_fee={"amount": "120.00", "timing": "advance"})
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    if (end.month, end.day) == (2, 29):
        pytest.skip("no 29 February a year before")
    start = end.replace(year=end.year - 1)  # by hand: the period is [start, end)
    sub = subscribe(admin, start, plan="yearly")
    path = f"/v1/subscriptions/{sub['id']}"
    status, pending = admin("POST", f"{path}/cancel", {"at_period_end": True}, subscription_id=sub["id"])
    assert (status, pending["status"], pending["ended_at"]) == (200, "active", None)

    # WHEN the period has ended (and its last window is billed)
    while datetime.now(UTC) < end:
        time.sleep(0.2)
    bill(billing, end + HOUR, monkeypatch)

    # THEN the subscription reads canceled, ended at the period end, in both reads
    status, read = reader(path, subscription_id=sub["id"])
    assert (status, read["status"], ts(read["ended_at"])) == (200, "canceled", end)
    status, listed = reader("/v1/customers/acme/subscriptions", customer_id="acme")
    assert [(s["id"], s["status"]) for s in listed["data"]] == [(sub["id"], "canceled")]
    # AND no upcoming window is shown for a period that will never be billed
    status, upcoming = reader("/v1/customers/acme/upcoming-invoice", customer_id="acme")
    assert (status, upcoming["windows"]) == (200, [])
    # AND a plan change or another cancellation is refused with 409, nothing stored
    before = billing.plans.subscription(sub["id"])
    for action, body in (("change-plan", {"plan_code": "yearly"}), ("cancel", {"at_period_end": False})):
        status, refused = admin("POST", f"{path}/{action}", body, subscription_id=sub["id"])
        assert (status, refused["error"]["code"]) == (409, "subscription_canceled"), (action, refused)
    assert billing.plans.subscription(sub["id"]) == before
    # AND billing stopped after the opening (120.00) and the year's own window (no next-year fee)
    assert [i["subtotal_minor"] for i in invoices_of(billing, "acme")] == [12000, 0]


def test_future_plan_change_then_immediate_cancellation_keeps_phases_well_formed(
    admin: Api, billing: World, monkeypatch: Any
) -> None:
    # GIVEN pro (30.00 in advance) since about five days ago, with a change to max scheduled for tomorrow
    publish(admin, "pro", fixed_fee={"amount": "30.00", "timing": "advance"})
    publish(admin, "max", fixed_fee={"amount": "60.00", "timing": "advance"})
    start = day_28_or_less(datetime.now(UTC) - timedelta(days=5)).replace(microsecond=0)
    end = month_after(start)
    sub = subscribe(admin, start)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    status, changed = admin(
        "POST",
        f"/v1/subscriptions/{sub['id']}/change-plan",
        {"plan_code": "max", "at": tomorrow.isoformat()},
        subscription_id=sub["id"],
    )
    assert status == 200 and len(changed["phases"]) == 2
    bill(billing, start + HOUR, monkeypatch)

    # WHEN it is canceled now, before the change takes effect
    ended = cancel_now(admin, sub)

    # THEN the change that never took effect is gone and pro ends at the cancellation
    stored = billing.plans.subscription(sub["id"])
    assert [(p["plan_code"], ts(p["start_at"]), ts(p["end_at"])) for p in stored.document["phases"]] == [
        ("pro", start, ended)
    ]
    # AND the final invoice credits pro's unused time from the cancellation, nothing of max
    bill(billing, ended + HOUR, monkeypatch)
    final = invoices_of(billing, "acme")[-1]
    assert amounts(final) == {"proration:credit:0": -prorated("30.00", (ended, end), (start, end))}
