"""The threshold setting through the API (validation, audit, null clears it) and threshold invoices as
the API shows them: ``billing_reason`` in GET invoices, the cut and the deducted invoices in explain, and
the upcoming-invoice preview taking off what threshold invoices billed."""

from __future__ import annotations

from typing import Any

from neruba.logic.billing.threshold_invoices import evaluate_customer
from neruba.logic.billing.upcoming import upcoming_invoice
from neruba.settings import get_settings
from neruba.timefmt import parse_ts
from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day, schedule, work
from tests.functional.billing.test_threshold_invoices import by_kind, opened, thr  # noqa: F401
from tests.functional.catalog.conftest import Api, admin, reader  # noqa: F401
from tests.support.api import api_event, call


def test_the_customer_setting_is_validated_audited_and_cleared_by_null(admin: Api, reader: Api) -> None:  # noqa: F811
    body = {"external_id": "acme", "name": "Acme", "currency": "USD", "invoice_threshold_minor": 0}
    status, error = admin("POST", "/v1/customers", body)
    assert (status, error["error"]["details"][0]["param"]) == (422, "invoice_threshold_minor"), error
    assert admin("POST", "/v1/customers", {**body, "invoice_threshold_minor": 2500})[0] == 201
    path = {"customer_id": "acme"}
    for bad in (0, -1, "10", 1.5, True, 10**15 + 1):
        status, error = admin("PATCH", "/v1/customers/acme", {"invoice_threshold_minor": bad}, params=path)
        assert (status, error["error"]["details"][0]["param"]) == (422, "invoice_threshold_minor"), error
    assert reader("/v1/customers/acme", params=path)[1]["invoice_threshold_minor"] == 2500

    assert admin("PATCH", "/v1/customers/acme", {"invoice_threshold_minor": 10**15}, params=path)[0] == 200
    status, cleared = admin("PATCH", "/v1/customers/acme", {"invoice_threshold_minor": None}, params=path)
    assert (status, cleared["invoice_threshold_minor"]) == (200, None)

    from neruba.dal.audit import AuditRepository

    records, _ = AuditRepository(get_settings().ops_table).list("acme", 100)
    updates = [(r["before"], r["after"]) for r in records if r["action"] == "customer.update"]
    assert ({"invoice_threshold_minor": 2500}, {"invoice_threshold_minor": 10**15}) in updates
    assert ({"invoice_threshold_minor": 10**15}, {"invoice_threshold_minor": None}) in updates


def _read(path: str, **params: str) -> Any:
    from functions.billing_api.app import lambda_handler

    status, body, _ = call(
        lambda_handler, api_event("GET", path, path_parameters=params or None, scopes="read")
    )
    assert status == 200, body
    return body


def test_invoices_explain_and_the_preview_show_threshold_invoices(thr: World, monkeypatch: Any) -> None:  # noqa: F811
    # GIVEN a threshold invoice of 600 (60 calls), then 25 more calls
    opened(thr, monkeypatch)
    thr.usage("acme", START + day(0, 2), 60)
    evaluate_customer(thr.ctx, "acme", START + day(0, 3))
    thr.usage("acme", START + day(0, 5), 25)
    [early] = by_kind(thr, "acme", "threshold")

    # WHEN the customer previews its upcoming invoice
    preview = upcoming_invoice(thr.plans, thr.ctx.usage, "acme", START + day(0, 6), billing=thr.ctx.billing)

    # THEN the period is rated to date (850) less what the threshold invoice billed (600)
    [window] = preview["windows"]
    assert window["threshold_invoiced_minor"] == 600
    assert [(line["kind"], line["amount_minor"]) for line in window["lines"]] == [
        ("usage", 850),
        ("threshold_deduction", -600),
    ]
    assert window["subtotal_minor"] == 250

    # WHEN the period is billed and the invoices are listed and explained through the API
    schedule(thr, START + day(1, 1))
    work(thr, START + day(1, 1), monkeypatch)
    from functions.billing_api.app import lambda_handler

    status, page, _ = call(
        lambda_handler, api_event("GET", "/v1/invoices", query={"customer_id": "acme"}, scopes="read")
    )
    assert status == 200, page
    reasons = {i["kind"]: i["billing_reason"] for i in page["data"]}
    assert reasons == {
        "opening": "subscription_create",
        "threshold": "subscription_threshold",
        "usage": "subscription_cycle",
    }
    shown = next(i for i in page["data"] if i["kind"] == "threshold")
    assert shown["threshold"]["threshold_minor"] == 500 and shown["threshold"]["rated_to_cut_minor"] == 600

    explained = _read(f"/v1/invoices/{early['id']}/explain", invoice_id=early["id"])
    assert explained["billing_reason"] == "subscription_threshold"
    cut = parse_ts(explained["threshold"]["cut_at"])
    assert cut == parse_ts(early["threshold"]["cut_at"]) == START + day(0, 3)
    [line] = explained["lines"]
    assert line["threshold"]["rated_to_cut"]["amount_minor"] == 600 and line["events"] == 60

    [usage] = by_kind(thr, "acme", "usage")
    closing = _read(f"/v1/invoices/{usage['id']}/explain", invoice_id=usage["id"])
    deduction = next(x for x in closing["lines"] if x["kind"] == "threshold_deduction")
    [ref] = deduction["threshold"]["invoices"]
    assert (ref["invoice_id"], ref["number"], ref["amount_minor"]) == (early["id"], early["number"], 600)
    from tests.functional.billing.conftest import invoice_postings

    [posting] = [p for p in invoice_postings("acme") if p.idempotency_key == ref["posting_key"]]
    assert posting.total_minor == 600
    assert deduction["references"]["threshold_invoices"] == [early["id"]]
