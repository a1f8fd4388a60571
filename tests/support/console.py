"""The operator console in a real browser: Debian's Chromium driven by Playwright (no browser download),
and the data its tests and screenshots look at, made through the API of a running local stack."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from neruba.dal.clients import client
from tests.support.stack import HTTP_TIMEOUT_S

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CUSTOMER = "console-acme"
HOOK_URL = "http://127.0.0.1:9/console-hooks"  # nothing listens there


@dataclass(frozen=True, slots=True)
class ConsoleData:
    admin_key: str
    read_key: str
    customer_id: str
    invoice_id: str
    stripe_event_id: str
    dlq_transaction_id: str
    webhook_event_id: str


def api(base: str, key: str, method: str, path: str, body: Any = None, **headers: str) -> Any:
    """One API call; the parsed answer (raises urllib's HTTPError on a 4xx/5xx)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Content-Type", "application/json")
    for name, value in headers.items():
        request.add_header(name.replace("_", "-"), value)
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
        return json.loads(response.read() or b"null")


def until(what: str, probe: Callable[[], Any], seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = probe()
        if answer:
            return answer
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def seed(stack: Any) -> ConsoleData:
    """A customer with usage and an invoice, a stored Stripe event, and one ingest message in IngestDLQ."""
    from neruba import bootstrap
    from neruba.logic.ingest.api import queue_message
    from neruba.models.events import UsageEventIn
    from neruba_tools.local.seed import seed_demo
    from tests.support.stripe_events import encode, event, sign

    demo = seed_demo()
    now = datetime.now(UTC)
    base, admin = stack.base_url, demo.api_key
    read_key, _ = bootstrap.keys().create(frozenset({"read"}), name="console read-only")
    try:
        api(base, admin, "GET", f"/v1/customers/{CUSTOMER}")
    except urllib.error.HTTPError:
        # an endpoint nothing listens at: the customer.created event fails its first delivery
        hook = {"url": HOOK_URL, "enabled_events": ["customer.created"]}
        api(base, admin, "POST", "/admin/webhook-endpoints", hook)
        customer = {"external_id": CUSTOMER, "name": "Acme Console Ltd", "currency": "USD"}
        api(base, admin, "POST", "/v1/customers", {**customer, "email": "ops@acme.example"})
        # started 32 days ago: its first monthly window has ended, so a billing run invoices its usage
        start = (now - timedelta(days=32)).isoformat()
        subscription = {"customer_id": CUSTOMER, "plan_code": demo.plan_code, "start_at": start}
        api(base, admin, "POST", "/v1/subscriptions", subscription)
    used_at = (now - timedelta(days=3)).isoformat()
    events = [
        {"transaction_id": f"console-{i}", "customer_id": CUSTOMER, "code": demo.meter_code,
         "timestamp": used_at, "properties": {"value": 700}}
        for i in range(3)
    ]  # fmt: skip
    api(base, admin, "POST", "/v1/events", {"events": events})
    until("the usage counted", lambda: found(base, admin, f"/v1/events/console-2?customer_id={CUSTOMER}"))
    api(base, admin, "POST", "/admin/billing-runs", {"customer_id": CUSTOMER, "reason": "console tests"})

    def usage_invoice() -> Any:
        listed = api(base, admin, "GET", f"/v1/invoices?customer_id={CUSTOMER}")["data"]
        return next((i for i in listed if any(line.get("meter_code") for line in i["lines"])), None)

    invoice = until("the invoice of the customer's first window", usage_invoice)
    stripe_id = f"evt_console_{uuid.uuid4().hex[:12]}"
    raw = encode(event("charge.succeeded", {"id": "ch_console_1", "object": "charge"}, event_id=stripe_id))
    request = urllib.request.Request(base + "/webhooks/stripe", data=raw, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Stripe-Signature", sign(raw, stack.stripe_webhook_secret))
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
        assert response.status == 200
    transaction = f"console-dlq-{uuid.uuid4().hex[:8]}"
    parked = UsageEventIn(transaction_id=transaction, customer_id=CUSTOMER, code=demo.meter_code,
                          properties={"value": 5})  # fmt: skip
    message = queue_message(parked, "console-request", 0, datetime.now(UTC))
    client("sqs").send_message(QueueUrl=stack.queue_urls["IngestDLQ"], MessageBody=message)
    stack.fire_schedule("WebhookRelayFunction.Schedule")
    webhook_event = until("the customer.created delivery attempted", lambda: _attempted_event(base, admin))
    return ConsoleData(
        admin, read_key, CUSTOMER, str(invoice["id"]), stripe_id, transaction, str(webhook_event["id"])
    )


def unseed(stack: Any, data: ConsoleData) -> None:
    """Leave the shared stack as the other tests expect it: no endpoint of ours retrying deliveries, no
    message of ours in IngestDLQ (there when the redrive test failed)."""
    base = stack.base_url
    for endpoint in api(base, data.admin_key, "GET", "/admin/webhook-endpoints?limit=100")["data"]:
        if endpoint["url"] == HOOK_URL:
            api(base, data.admin_key, "DELETE", f"/admin/webhook-endpoints/{endpoint['id']}")
    sqs, url = client("sqs"), stack.queue_urls["IngestDLQ"]
    for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        if data.dlq_transaction_id in message["Body"]:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        else:  # not ours: visible again at once
            sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )


def _attempted_event(base: str, key: str) -> Any:
    """The customer.created webhook event of the console's customer, once an attempt is recorded."""
    listed = found(base, key, f"/admin/webhook-events?customer_id={CUSTOMER}&type=customer.created")
    for event in (listed or {}).get("data", []):
        shown = found(base, key, f"/admin/webhook-events/{event['id']}")
        if shown and shown["attempts"]:
            return shown
    return None


def found(base: str, key: str, path: str) -> Any:
    try:
        return api(base, key, "GET", path)
    except urllib.error.HTTPError:
        return None


@contextmanager
def browser_page(viewport: tuple[int, int] = (1280, 900)) -> Iterator[Any]:
    """One headless Chromium (Debian's) with one page; console errors and failed requests are collected
    in ``page.problems``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.set_default_timeout(10_000)
            problems: list[str] = []
            page.on(
                "console",
                lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.problems = problems  # type: ignore[attr-defined]
            yield page
        finally:
            browser.close()


def sign_in(page: Any, base: str, key: str) -> None:
    page.goto(base + "/console")
    page.evaluate("sessionStorage.clear()")
    page.goto(base + "/console#/overview")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", level=1, name="Overview").wait_for()


# An accessibility check of the DOM as it stands: labels, names, headings, ids, table headers.
A11Y_CHECK = """() => {
  const problems = [];
  const named = (el) => (el.getAttribute('aria-label') || el.textContent || el.title || '').trim();
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden') continue;
    const labelled = (el.labels && el.labels.length) || el.getAttribute('aria-label');
    if (!labelled) problems.push(`no label: ${el.outerHTML}`);
  }
  for (const el of document.querySelectorAll('button, a[href]')) {
    if (!named(el)) problems.push(`no accessible name: ${el.outerHTML}`);
  }
  for (const el of document.querySelectorAll('svg')) {
    const described = el.getAttribute('role') === 'img' && el.getAttribute('aria-label');
    if (!described) problems.push('chart without role=img and a label');
  }
  const ids = [...document.querySelectorAll('[id]')].map((el) => el.id);
  for (const id of ids.filter((id, i) => ids.indexOf(id) !== i)) problems.push(`duplicate id ${id}`);
  if (document.querySelectorAll('main h1').length !== 1) problems.push('not exactly one h1 in main');
  for (const table of document.querySelectorAll('table')) {
    if (!table.querySelector('caption')) problems.push('table without caption');
    if (table.querySelectorAll('th[scope=col]').length === 0) problems.push('table without column headers');
  }
  if (!document.documentElement.lang) problems.push('no lang on html');
  if (document.querySelector('[style]')) problems.push('inline style attribute');
  if ([...document.scripts].some((s) => !s.src)) problems.push('inline script');
  return problems;
}"""
