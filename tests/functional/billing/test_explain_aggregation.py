"""Explain names the aggregation behind each usage line (it used to show ``aggregation: null``): the
meter's aggregation is carried into the line's ``source`` by rating, for lines with usage and for the
zero line of a charge without any."""

from __future__ import annotations

import json
from typing import Any

from tests.functional.billing.conftest import START, World, subscribe_real
from tests.functional.billing.helpers import day, schedule, work
from tests.support.api import api_event


def _explain(invoice_id: str) -> dict[str, Any]:
    from functions.billing_api.app import lambda_handler
    from tests.support.lambda_context import FakeContext

    path = f"/v1/invoices/{invoice_id}/explain"
    event = api_event("GET", path, path_parameters={"invoice_id": invoice_id}, scopes="read")
    response = lambda_handler(event, FakeContext())
    assert response["statusCode"] == 200
    body: dict[str, Any] = json.loads(response["body"])
    return body


def test_explain_shows_the_meter_s_aggregation(real: World, monkeypatch: Any) -> None:
    from neruba import bootstrap

    bootstrap.install(billing=real.ctx)
    # GIVEN day 0 with 10 calls (a count meter) and day 1 without any, both billed
    subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 10)
    schedule(real, START + day(2, 1))
    work(real, START + day(2, 1), monkeypatch)
    usage = sorted(
        (i for i in real.invoices("acme") if i["kind"] == "usage"), key=lambda i: i["period_start"]
    )
    assert len(usage) == 2

    # WHEN both invoices are explained
    busy, idle = (_explain(invoice["id"]) for invoice in usage)

    # THEN each usage line names its meter's aggregation, the zero line of the idle day too
    for explained, quantity in ((busy, "10"), (idle, "0")):
        (line,) = [x for x in explained["lines"] if x["kind"] == "usage"]
        assert line["aggregate"] == {"aggregation": "count", "quantity": quantity}
    stored = [line for invoice in usage for line in invoice["lines"] if line["kind"] == "usage"]
    assert [line["source"]["aggregation"] for line in stored] == ["count", "count"]


def test_an_adjustment_line_names_the_aggregation_of_the_line_it_corrects(
    real: World, monkeypatch: Any
) -> None:
    from neruba import bootstrap
    from neruba.logic.billing.admin import rerun_invoice
    from neruba.models.billing import RerunRequest

    bootstrap.install(billing=real.ctx)
    # GIVEN day 0 billed (10 calls) and finalized, 3 late calls, and day 0 rerun: a pending correction
    subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 10)
    schedule(real, START + day(1, 1))
    work(real, START + day(1, 1), monkeypatch)
    schedule(real, START + day(1, 3))
    (day0,) = [i for i in real.invoices("acme") if i["kind"] == "usage"]
    real.usage("acme", START + day(0, 4), 13)
    rerun_invoice(real.ctx, day0["id"], RerunRequest(reason="late"), "key:test", "r1", now=START + day(1, 4))
    # WHEN day 1, which carries the correction, is billed and explained
    schedule(real, START + day(2, 1))
    work(real, START + day(2, 1), monkeypatch)
    day1 = next(i for i in real.invoices("acme") if i["kind"] == "usage" and i["id"] != day0["id"])
    explained = _explain(day1["id"])
    # THEN the adjustment line names the count aggregation too
    (line,) = [x for x in explained["lines"] if x["kind"] == "adjustment"]
    assert line["aggregate"] == {"aggregation": "count", "quantity": "3"}
