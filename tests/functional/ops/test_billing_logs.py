"""Billing log lines carry the ids they concern (customer, subscription, invoice)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from neruba.logic.billing.worker import ensure_billing_state
from tests.functional.billing.conftest import START, World, world  # noqa: F401 - the billing fixture
from tests.functional.billing.helpers import schedule, work


def test_a_billing_run_logs_the_ids_of_what_it_touches(
    world: World,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    json_logs: Any,
) -> None:
    # GIVEN a subscription whose opening window is due
    doc = world.subscribe("acme")
    ensure_billing_state(world.ctx.billing, doc)
    # WHEN a scheduler run enqueues it, the worker bills it, and a later run finalizes and hands it to sync
    schedule(world, START + timedelta(minutes=5))
    work(world, START + timedelta(minutes=5), monkeypatch)
    schedule(world, START + timedelta(hours=2))
    (invoice,) = world.invoices("acme")
    # THEN each of those log lines names the customer, the subscription and the invoice
    lines = {line["message"]: line for line in json_logs()}
    for message in (
        "billing windows enqueued",
        "window invoiced",
        "invoice finalized",
        "invoice sent to stripe sync",
    ):
        assert message in lines, sorted(lines)
        line = lines[message]
        assert line["customer_id"] == "acme", line
        assert line["subscription_id"] == doc["id"], line
        assert invoice["id"] in (line.get("invoice_id"), *line.get("invoice_ids", [])), line
