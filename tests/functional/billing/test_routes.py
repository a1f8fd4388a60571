"""The billing API: invoice reads and explain (read scope), runs and reruns (admin scope, audited)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from neruba.settings import get_settings
from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day, schedule, stored_invoice, work
from tests.support.api import api_event, call


@pytest.fixture
def api(world: World, monkeypatch: Any) -> Any:
    from functions.billing_api.app import lambda_handler
    from neruba import bootstrap

    bootstrap.install(billing=world.ctx)
    return lambda_handler


def _billed(world: World, monkeypatch: Any, finalize: bool = True) -> list[dict[str, Any]]:
    world.subscribe("acme")
    world.usage("acme", START + day(0, 2), 6)
    world.usage("acme", START + day(0, 3), 4)
    now = START + day(1, 1)
    schedule(world, now)
    work(world, now, monkeypatch)
    if finalize:
        schedule(world, now + day(0, 2))
    return world.invoices("acme")


def _audits(customer_id: str) -> list[dict[str, Any]]:
    from neruba.dal.audit import AuditRepository

    records, _ = AuditRepository(get_settings().ops_table).list(customer_id, 100)
    return records


def test_list_get_and_explain_invoices(world: World, api: Any, monkeypatch: Any) -> None:
    # GIVEN two finalized invoices of acme
    invoices = _billed(world, monkeypatch)
    usage = next(i for i in invoices if i["kind"] == "usage")

    # WHEN listing, filtering, retrieving and explaining
    status, listed, _ = call(
        api, api_event("GET", "/v1/invoices", query={"customer_id": "acme"}, scopes="read")
    )
    assert status == 200 and len(listed["data"]) == 2 and listed["has_more"] is False
    status, drafts, _ = call(
        api, api_event("GET", "/v1/invoices", query={"customer_id": "acme", "status": "draft"}, scopes="read")
    )
    assert status == 200 and drafts["data"] == []
    path = f"/v1/invoices/{usage['id']}"
    status, one, _ = call(
        api, api_event("GET", path, path_parameters={"invoice_id": usage["id"]}, scopes="read")
    )
    status_x, explained, _ = call(
        api, api_event("GET", path + "/explain", path_parameters={"invoice_id": usage["id"]}, scopes="read")
    )

    # THEN the invoice has its lines and number; the explanation names meter, hours, events, price version
    assert status == 200 and one["number"].startswith("INV-") and one["lines"][0]["quantity"] == "10"
    assert status_x == 200
    line = explained["lines"][0]
    assert (line["meter_code"], line["hours"], line["events"]) == ("api_calls", 2, 10)
    assert (line["price"]["plan_code"], line["price"]["plan_version"], line["amount_minor"]) == (
        "basic",
        1,
        100,
    )
    assert line["credits_applied"] == []


def test_invoice_errors_are_clean(world: World, api: Any) -> None:
    missing = "in_" + "0" * 24
    status, body, _ = call(
        api, api_event("GET", f"/v1/invoices/{missing}", path_parameters={"invoice_id": missing})
    )
    assert (status, body["error"]["code"]) == (404, "invoice_not_found")
    status, body, _ = call(
        api, api_event("GET", "/v1/invoices", query={"customer_id": "acme"}, scopes="ingest")
    )
    assert status == 403
    status, body, _ = call(
        api, api_event("GET", "/v1/invoices", query={"customer_id": "acme", "starting_after": "nope"})
    )
    assert (status, body["error"]["code"]) == (400, "invalid_cursor")
    status, body, _ = call(api, api_event("GET", "/v1/invoices"))
    assert (status, body["error"]["code"]) == (400, "filter_required")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/billing-runs"),
        ("GET", "/admin/billing-runs/run_00000000000000000000"),
        ("POST", "/admin/billing-runs"),
        ("POST", "/admin/invoices/in_000000000000000000000000/rerun"),
    ],
)
def test_admin_routes_need_the_admin_scope(api: Any, method: str, path: str) -> None:
    status, body, _ = call(api, api_event(method, path, body={"reason": "check"}, scopes="read ingest"))
    assert (status, body["error"]["code"]) == (403, "insufficient_scope")


def test_trigger_a_run_for_one_customer_audited_and_idempotent(
    world: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN acme and globex both due, and a fixed "now"
    world.subscribe("acme")
    world.subscribe("globex")
    from neruba.logic.billing import admin as invoices

    real = invoices.trigger_run
    monkeypatch.setattr(invoices, "trigger_run", lambda *a, **k: real(*a, **k, now=START + day(1, 1)))
    request = {"customer_id": "acme", "reason": "customer asked for an early invoice", "ticket": "T-1"}

    # WHEN an operator triggers a run for acme, twice with the same Idempotency-Key
    headers = {"Idempotency-Key": "run-1"}
    status, run, _ = call(api, api_event("POST", "/admin/billing-runs", body=request, headers=headers))
    again_status, again, _ = call(
        api, api_event("POST", "/admin/billing-runs", body=request, headers=headers)
    )
    other_status, other, _ = call(
        api,
        api_event(
            "POST", "/admin/billing-runs", body={**request, "reason": "another reason"}, headers=headers
        ),
    )

    # THEN one manual run enqueued acme's two windows only, recorded once and audited once
    assert status == 201 and (run["trigger"], run["enqueued"], run["customer_id"]) == ("manual", 2, "acme")
    assert (again_status, again["id"]) == (201, run["id"])
    assert (other_status, other["error"]["code"]) == (409, "idempotency_conflict")
    runs, _ = world.ctx.billing.runs(10, None)
    assert [r.id for r in runs] == [run["id"]]
    audits = _audits("acme")
    assert [(a["action"], a["actor"], a["reason"], a["ticket"]) for a in audits] == [
        ("billing_run.create", "key:0123456789ab", "customer asked for an early invoice", "T-1")
    ]
    # AND the run is readable
    path = f"/admin/billing-runs/{run['id']}"
    status, got, _ = call(api, api_event("GET", path, path_parameters={"run_id": run["id"]}))
    assert status == 200 and got["status"] == "completed"
    status, listed, _ = call(api, api_event("GET", "/admin/billing-runs"))
    assert status == 200 and [r["id"] for r in listed["data"]] == [run["id"]]


def test_run_errors(world: World, api: Any) -> None:
    status, body, _ = call(
        api, api_event("POST", "/admin/billing-runs", body={"customer_id": "nobody", "reason": "x" * 5})
    )
    assert (status, body["error"]["code"]) == (404, "customer_not_found")
    status, body, _ = call(
        api, api_event("POST", "/admin/billing-runs", body={"at": "2999-01-01T00:00:00Z", "reason": "future"})
    )
    assert (status, body["error"]["code"]) == (400, "invalid_run_time")
    status, body, _ = call(
        api, api_event("POST", "/admin/billing-runs", body={"reason": "ok", "surprise": 1})
    )
    assert status == 422
    missing = "run_" + "0" * 20
    status, body, _ = call(
        api, api_event("GET", f"/admin/billing-runs/{missing}", path_parameters={"run_id": missing})
    )
    assert (status, body["error"]["code"]) == (404, "billing_run_not_found")


def test_a_run_while_another_holds_the_lock_is_409_and_recorded(world: World, api: Any) -> None:
    # GIVEN a live lease held by a scheduled run
    assert world.locks.acquire("billing-scheduler", "run_scheduled", timedelta(minutes=5), datetime.now(UTC))

    # WHEN an operator triggers a run
    status, body, _ = call(api, api_event("POST", "/admin/billing-runs", body={"reason": "now please"}))

    # THEN it is refused with a clear code and recorded as skipped_locked
    assert (status, body["error"]["code"]) == (409, "billing_run_locked")
    runs, _ = world.ctx.billing.runs(10, None)
    assert [(r.status, r.lock_holder) for r in runs] == [("skipped_locked", "run_scheduled")]


def test_rerun_a_draft_recomputes_it(world: World, api: Any, monkeypatch: Any) -> None:
    # GIVEN a draft with 10 calls, then 5 more counted for its window
    usage = next(i for i in _billed(world, monkeypatch, finalize=False) if i["kind"] == "usage")
    world.usage("acme", START + day(0, 2), 11)
    path = f"/admin/invoices/{usage['id']}/rerun"

    # WHEN an operator reruns it
    status, result, _ = call(
        api,
        api_event("POST", path, body={"reason": "late upload"}, path_parameters={"invoice_id": usage["id"]}),
    )

    # THEN the draft itself is recomputed, and the action is audited
    assert status == 200 and result["action"] == "draft_recomputed"
    stored = world.ctx.invoices.get(usage["id"])
    assert stored is not None and (stored.status, stored.subtotal_minor, stored.rev) == ("draft", 150, 1)
    assert [a["action"] for a in _audits("acme")] == ["invoice.rerun"]


def test_rerun_a_finalized_invoice_corrects_it_on_the_next_invoice(
    world: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN a finalized invoice with 10 calls; 2 more are counted later
    usage = next(i for i in _billed(world, monkeypatch) if i["kind"] == "usage")
    world.usage("acme", START + day(0, 3), 6)
    path = f"/admin/invoices/{usage['id']}/rerun"
    event = api_event(
        "POST",
        path,
        body={"reason": "recount"},
        path_parameters={"invoice_id": usage["id"]},
        headers={"Idempotency-Key": "rr-1"},
    )

    # WHEN an operator reruns it (twice, same key)
    status, result, _ = call(api, event)
    _status2, result2, _ = call(
        api, {**event, "requestContext": {**event["requestContext"], "requestId": "r2"}}
    )

    # THEN the invoice is unchanged and a pending +2 calls adjustment is recorded, once
    assert status == 200 and result["action"] == "adjustment_pending"
    assert result["correction"]["amount_minor"] == 20 and result2 == result
    assert stored_invoice(world, usage["id"]).document == usage
    # AND the next invoice carries it exactly once (no second late-event adjustment for the same calls)
    later = START + day(2, 1)
    schedule(world, later)
    work(world, later, monkeypatch)
    following = next(i for i in world.invoices("acme") if i["seq"] == 2)
    adjustments = [line for line in following["lines"] if line["kind"] == "adjustment"]
    assert [(a["quantity"], a["amount_minor"], a["references"]["invoice_id"]) for a in adjustments] == [
        (2, 20, usage["id"])
    ]
    assert len(_audits("acme")) == 1


def test_rerun_errors(world: World, api: Any) -> None:
    missing = "in_" + "0" * 24
    status, body, _ = call(
        api,
        api_event(
            "POST",
            f"/admin/invoices/{missing}/rerun",
            body={"reason": "why"},
            path_parameters={"invoice_id": missing},
        ),
    )
    assert (status, body["error"]["code"]) == (404, "invoice_not_found")
