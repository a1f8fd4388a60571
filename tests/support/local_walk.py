"""The local walk-through over HTTP (docs/deploy.md, "Locally: from usage to a paid invoice"), shared by
the integration tests that run it on a local stack."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from tests.support.stack import HTTP_TIMEOUT_S


def http(
    base: str, method: str, path: str, key: str | None = None, body: Any = None, raw: bytes | None = None
) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def until(what: str, probe: Callable[[], Any], seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def synced_invoice(base: str, key: str) -> dict[str, Any]:
    """A new customer on the demo plan, one usage event, two billing runs (the draft, then, after the
    one-second grace, its finalization); returns the invoice once the sync function pushed it to Stripe."""
    customer = f"walk-{uuid.uuid4().hex[:8]}"
    status, _ = http(
        base, "POST", "/v1/customers", key, {"external_id": customer, "name": "Walk", "currency": "USD"}
    )
    assert status == 201
    status, _ = http(
        base, "POST", "/v1/subscriptions", key, {"customer_id": customer, "plan_code": "demo-usage"}
    )
    assert status == 201
    event = {
        "transaction_id": f"{customer}-1",
        "customer_id": customer,
        "code": "api_calls",
        "properties": {"value": 5},
    }
    status, answer = http(base, "POST", "/v1/events", key, {"events": [event]})
    assert (status, answer["queued"]) == (202, 1), answer
    run = {"customer_id": customer, "reason": "local walk-through"}
    status, first = http(base, "POST", "/admin/billing-runs", key, run)
    assert status in (200, 201) and first["invoiced"] == 1, first
    time.sleep(1.2)  # the stack's BillingGraceSeconds
    status, second = http(base, "POST", "/admin/billing-runs", key, run)
    assert second["finalized"] == 1, second

    def synced() -> dict[str, Any] | None:
        _, page = http(base, "GET", f"/v1/invoices?customer_id={customer}", key)
        invoices = page["data"]
        return (
            invoices[0] if invoices and (invoices[0].get("stripe") or {}).get("status") == "synced" else None
        )

    return dict(until("the invoice synced to the local Stripe", synced))
