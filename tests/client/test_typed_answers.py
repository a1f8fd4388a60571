"""Answers the document now types (ChargeView, TierView, Phase, EventOutcome, BalanceSummary, a rerun's
Invoice) parse into the client's models, exact decimals kept exact."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from neruba_client import models
from tests.client.conftest import Script, invoice


def test_plan_charges_and_tiers_are_exact_decimals(make_client: Any) -> None:
    plan = {
        "code": "pro",
        "version": 2,
        "name": "Pro",
        "currency": "USD",
        "interval": "month",
        "versions": [1, 2],
        "charges": [
            {
                "meter_code": "tokens",
                "model": "graduated",
                "tiers": [
                    {"unit_price": "0.000123", "up_to": "1000", "flat_fee": None},
                    {"unit_price": "0.0001", "up_to": None, "flat_fee": "5"},
                ],
                "unit_price": None,
                "free_units": "10.5",
            },
            {"meter_code": "calls", "model": "per_unit", "unit_price": "0.01"},
        ],
    }
    got = make_client(Script(httpx.Response(200, json=plan))).plans.retrieve("pro")
    tokens, calls = got.charges
    assert isinstance(tokens, models.ChargeView) and tokens.model == "graduated"
    assert [(t.unit_price, t.up_to, t.flat_fee) for t in tokens.tiers] == [
        (Decimal("0.000123"), Decimal("1000"), None),
        (Decimal("0.0001"), None, Decimal("5")),
    ]
    assert tokens.free_units == Decimal("10.5")
    assert calls.unit_price == Decimal("0.01") and calls.tiers == []


def test_subscription_phases_and_event_outcomes_are_models(make_client: Any) -> None:
    subscription = {
        "id": "sub_1",
        "customer_id": "acme",
        "status": "active",
        "currency": "USD",
        "interval": "month",
        "start_at": "2026-01-01T00:00:00Z",
        "trial_end": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "ended_at": None,
        "phases": [
            {"plan_code": "pro", "plan_version": 1, "start_at": "2026-01-01T00:00:00Z", "end_at": None}
        ],
    }
    event = {
        "object": "event",
        "transaction_id": "t1",
        "customer_id": "acme",
        "code": "calls",
        "timestamp": "2026-01-02T00:00:00Z",
        "properties": {},
        "status": "accepted",
        "reason": None,
        "reason_message": None,
        "late": False,
        "received_at": "2026-01-02T00:00:01Z",
        "outcomes": [
            {"outcome": "accepted", "request_id": "r1", "copy_id": "r1:0", "at": "2026-01-02T00:00:02Z"},
            {"outcome": "duplicate", "request_id": "r2", "copy_id": "r2:0", "at": None},
        ],
        "copies": {"accepted": 1, "duplicate": 1},
    }
    client = make_client(Script(httpx.Response(200, json=subscription), httpx.Response(200, json=event)))
    (phase,) = client.subscriptions.retrieve("sub_1").phases
    assert isinstance(phase, models.Phase) and (phase.plan_code, phase.plan_version) == ("pro", 1)
    assert phase.end_at is None
    outcomes = client.events.retrieve("t1", customer_id="acme").outcomes
    assert [(o.outcome, o.copy_id) for o in outcomes] == [("accepted", "r1:0"), ("duplicate", "r2:0")]


def test_a_rerun_answers_an_invoice_and_an_adjustment_its_balance(make_client: Any) -> None:
    rerun = {
        "object": "invoice_rerun",
        "invoice_id": "in_1",
        "action": "draft_recomputed",
        "invoice": invoice("in_1", "acme"),
        "correction": None,
    }
    adjusted = {
        "object": "ledger_posting",
        "id": "p1",
        "customer_id": "acme",
        "currency": "USD",
        "at": "2026-01-02T00:00:00Z",
        "effective_at": "2026-01-02T00:00:00Z",
        "reason": "goodwill",
        "source": None,
        "source_id": None,
        "actor": "ops",
        "idempotency_key": "k",
        "metadata": {},
        "entries": [{"account": "credit", "credit_minor": 500}],
        "total_minor": 500,
        "balance": {
            "amount_due_minor": 0,
            "credit_available_minor": 500,
            "credit_available_by_grant": {},
            "paid_to_date_minor": 0,
            "accounts": {"credit": 500},
        },
    }
    client = make_client(Script(httpx.Response(200, json=rerun), httpx.Response(200, json=adjusted)))
    got = client.admin.rerun_invoice("in_1", reason="fix")
    assert isinstance(got.invoice, models.Invoice) and got.invoice.total_minor == 1250
    balance = client.admin.adjust_balance(
        "acme", amount_minor=500, reason="sorry", reason_code="goodwill"
    ).balance
    assert isinstance(balance, models.BalanceSummary) and balance.credit_available_minor == 500


def test_one_off_charges_send_exact_prices_and_answer_typed_charges(make_client: Any) -> None:
    from decimal import Decimal

    charge = {
        "object": "one_off_charge",
        "id": "ooc_0123456789abcdef01234567",
        "customer_id": "acme",
        "description": "Consulting",
        "amount_minor": 10001,
        "quantity": "3",
        "unit_price": "33.335",
        "currency": "USD",
        "mode": "next_invoice",
        "metadata": {"order": "o-1"},
        "reason": "onboarding",
        "ticket": None,
        "status": "pending",
        "invoice_id": None,
        "created_at": "2026-01-02T00:00:00.000000Z",
        "voided_at": None,
    }
    listed = {"object": "list", "data": [charge], "has_more": False, "next_cursor": None}
    voided = {**charge, "status": "void", "voided_at": "2026-01-03T00:00:00.000000Z"}
    script = Script(
        httpx.Response(201, json=charge), httpx.Response(200, json=listed), httpx.Response(200, json=voided)
    )
    client = make_client(script)

    got = client.admin.create_one_off_charge(
        "acme",
        description="Consulting",
        quantity=3,
        unit_price=Decimal("33.335"),
        currency="USD",
        mode="next_invoice",
        metadata={"order": "o-1"},
        reason="onboarding",
        idempotency_key="fee-1",
    )
    assert isinstance(got, models.OneOffCharge) and got.amount_minor == 10001
    assert [c.id for c in client.admin.one_off_charges("acme")] == [charge["id"]]
    gone = client.admin.void_one_off_charge("acme", charge["id"], reason="waived", idempotency_key="v-1")
    assert gone.status == "void"

    create, listing, void = script.requests
    assert (create.method, create.url.path) == ("POST", "/base/admin/customers/acme/one-off-charges")
    assert create.headers["Idempotency-Key"] == "fee-1"
    assert json.loads(create.content)["unit_price"] == "33.335"  # an exact decimal, never a float
    assert (listing.method, listing.url.path) == ("GET", "/base/admin/customers/acme/one-off-charges")
    assert void.url.path == f"/base/admin/customers/acme/one-off-charges/{charge['id']}/void"


def test_bucket_labels_are_times_and_coupons_tax_rates_walk_their_pages(make_client: Any) -> None:
    outcomes = {
        "object": "list",
        "granularity": "minute",
        "data": [{"start": "2026-12-01T10:11:00Z", "accepted": 2, "duplicate": 0, "conflict": 0,
                  "replay": 0, "failed": 0, "over_limit": 0}],
        "totals": {"accepted": 2},
    }  # fmt: skip
    usage = {
        "object": "usage",
        "customer_id": "acme",
        "meter": "calls",
        "aggregation": "count",
        "granularity": "period",
        "from": "2026-12-01T00:00:00Z",
        "to": "2026-12-02T00:00:00Z",
        "total": "3",
        "data": [
            {"bucket": "before_subscription", "quantity": "1", "events": 1},
            {"bucket": "2026-12-01T09:00:00Z", "quantity": "2", "events": 2},
        ],
    }
    coupon = {"id": "co_1", "object": "coupon", "name": "Launch", "percent_off": "10",
              "amount_off_minor": None, "currency": None, "duration": "once", "duration_periods": None,
              "status": "active", "created_at": "2026-12-01T00:00:00Z"}  # fmt: skip
    pages = [
        {"object": "list", "data": [coupon], "has_more": True, "next_cursor": "c1"},
        {"object": "list", "data": [{**coupon, "id": "co_2"}], "has_more": False, "next_cursor": None},
    ]
    script = Script(*(httpx.Response(200, json=body) for body in (outcomes, usage, *pages)))
    client = make_client(script)
    got = client.events.outcomes(
        from_="2026-12-01T10:00:00Z", to="2026-12-01T11:00:00Z", granularity="minute"
    )
    assert got.data[0].start == datetime(2026, 12, 1, 10, 11, tzinfo=UTC)
    buckets = client.customers.usage("acme", meter="calls", from_="2026-12-01T00:00:00Z",
                                     to="2026-12-02T00:00:00Z", granularity="period").data  # fmt: skip
    assert [b.bucket for b in buckets] == ["before_subscription", datetime(2026, 12, 1, 9, tzinfo=UTC)]
    assert [c.id for c in client.admin.coupons(limit=1)] == ["co_1", "co_2"]
    sent = [dict(request.url.params) for request in script.requests[2:]]
    assert sent == [{"limit": "1"}, {"limit": "1", "starting_after": "c1"}]
