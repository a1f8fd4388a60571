"""The operator console in a real browser (Debian's Chromium through Playwright), against the local stack:
sign in, find a customer, explain an invoice, replay a Stripe event, redrive a DLQ; labels, keyboard
reach and the Content-Security-Policy. One stack and one browser for the whole module."""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.console import (
    A11Y_CHECK,
    CHROMIUM,
    ConsoleData,
    api,
    browser_page,
    found,
    seed,
    sign_in,
    unseed,
    until,
)
from tests.support.stack import HTTP_TIMEOUT_S

pytestmark = pytest.mark.integration
pytest.importorskip(
    "playwright.sync_api", reason="the console's browser tests need playwright (requirements/dev.txt)"
)
if not CHROMIUM.exists():  # `make test` installs it; elsewhere say what is missing (CI must never skip)
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium (make test does)")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def data(local_stack: Any) -> Iterator[ConsoleData]:
    made = seed(local_stack)
    yield made
    unseed(local_stack, made)


@pytest.fixture(scope="module")
def page(local_stack: Any, data: ConsoleData) -> Iterator[Any]:
    with browser_page() as opened:
        requests: list[str] = []
        opened.on("request", lambda r: requests.append(r.url))
        opened.requests = requests
        yield opened


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def _page_checked(page: Any) -> None:
    problems = page.evaluate(A11Y_CHECK)
    assert problems == [], problems


def test_the_page_is_served_without_a_key_under_a_strict_policy(local_stack: Any) -> None:
    with urllib.request.urlopen(local_stack.base_url + "/console", timeout=HTTP_TIMEOUT_S) as response:
        policy = response.headers["Content-Security-Policy"]
        html = response.read().decode()
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy and "default-src 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "an inline script"
    # another method, or a file that is not there: an error in the one shape under the same policy
    for method, path, status in (("POST", "/console", 405), ("GET", "/console/nope.js", 404)):
        request = urllib.request.Request(
            local_stack.base_url + path, method=method, data=b"" if method == "POST" else None
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S)
        assert refused.value.code == status
        assert refused.value.headers["Content-Security-Policy"] == policy
        assert status != 405 or refused.value.headers["Allow"] == "GET"


def test_a_wrong_key_is_refused_and_a_read_key_signs_in_read_only(
    local_stack: Any, data: ConsoleData, page: Any
) -> None:
    base = local_stack.base_url
    page.goto(base + "/console")
    page.evaluate("sessionStorage.clear()")
    page.reload()
    _page_checked(page)
    page.get_by_label("API key").fill("nrb_0123456789ab_" + "z" * 43)
    page.keyboard.press("Enter")
    page.get_by_role("alert").filter(has_text="does not accept this key").wait_for()
    page.get_by_label("API key").fill(data.read_key)
    page.keyboard.press("Enter")
    page.get_by_role("heading", level=1, name="Overview").wait_for()
    assert "read-only" in page.locator("#who").inner_text()
    # the events the data was made with are on the outcomes chart (the current minute included)
    page.get_by_role("img", name="Ingest outcomes per minute, last 6 hours").wait_for()
    # and its bars sit on the minutes the API counted them in (each minute matched by its label)
    accepted = _bar_values(page, "Ingest outcomes per minute, last 6 hours", "accepted")
    assert accepted and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:00Z", start) for start in accepted)
    assert sum(accepted.values()) >= 1, accepted
    # the key is in this tab's session storage only, never in a URL or in local storage
    assert page.evaluate("sessionStorage.getItem('neruba.console.key')") == data.read_key
    assert page.evaluate("localStorage.length") == 0
    assert not [url for url in page.requests if data.read_key in url]
    page.goto(base + f"/console#/invoices/{data.invoice_id}")
    assert page.get_by_role("button", name="Rerun invoice").is_disabled()


def test_find_a_customer_and_explain_an_invoice_by_keyboard(
    local_stack: Any, data: ConsoleData, page: Any
) -> None:
    sign_in(page, local_stack.base_url, data.admin_key)
    page.get_by_role("link", name="Customers").click()
    page.get_by_label("Search customers (id, name or email)").fill("Acme Console")
    page.keyboard.press("Enter")
    page.get_by_role("link", name=data.customer_id).click()
    page.get_by_role("heading", level=1, name=f"Customer {data.customer_id}").wait_for()
    for table in ("Subscriptions", "Invoices"):
        page.get_by_role("table", name=table).wait_for()
    # the usage of the meter its plan charges, as a chart with a text alternative
    page.get_by_role("img", name="Usage of api_calls per hour with usage").wait_for()
    assert "api_calls: 2100 over the last 7 days" in page.locator("main").inner_text()
    # and its bars sit on the hours the API gives the usage in (each hour matched by its label)
    hours = _bar_values(page, "Usage of api_calls per hour with usage", "quantity")
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:00:00Z", start) for start in hours), hours
    assert sum(hours.values()) == 2100, hours
    page.get_by_text("Nothing yet", exact=False).or_(
        page.get_by_role("table", name="Ledger postings")
    ).first.wait_for()
    _page_checked(page)
    page.get_by_role("link", name=data.invoice_id).click()
    page.get_by_role("heading", level=1, name=f"Invoice {data.invoice_id}").wait_for()
    page.get_by_role("table", name="Lines").wait_for()
    # the skip link (the first Tab stop of a loaded page) moves focus into the page without leaving it
    page.reload()
    page.get_by_role("table", name="Lines").wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.get_by_role("heading", level=1, name=f"Invoice {data.invoice_id}").wait_for()
    # keyboard only: Tab from the page heading reaches "Explain" and Enter opens the explanation
    page.locator("main h1").focus()
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Explain":
            break
    else:
        raise AssertionError("Tab never reached the Explain button")
    page.keyboard.press("Enter")
    explanation = page.locator("#explanation")
    explanation.locator("details").first.wait_for()
    # THEN each line opens down to the hours and events its usage was counted from
    usage = explanation.locator("details").filter(has_text="api_calls").first
    text = usage.inner_text()
    assert '"api_calls"' in text and "events: 3" in text and "hours" in text, text
    # AND the invoice page lists the ledger postings the invoice made, each linked to the customer's page
    posted = page.get_by_role("table", name="Ledger postings of this invoice")
    expect(posted.get_by_role("cell", name=f"invoice {data.invoice_id}")).to_have_count(1)
    page.get_by_role("link", name="All ledger postings of the customer").wait_for()
    _page_checked(page)


def test_replay_a_stripe_event_with_reason_and_ticket_shows_its_audit_record(
    local_stack: Any, data: ConsoleData, page: Any
) -> None:
    sign_in(page, local_stack.base_url, data.admin_key)
    page.get_by_role("link", name="Stripe events").click()
    page.get_by_role("link", name=data.stripe_event_id).click()
    page.get_by_role("button", name="Replay event").click()
    dialog = page.get_by_role("dialog")
    _page_checked(page)
    dialog.get_by_label("Reason").fill("customer asked twice")
    dialog.get_by_label("Ticket").fill("SUP-1234")
    dialog.get_by_role("button", name="Confirm").click()  # not yet confirmed: the form refuses
    assert dialog.get_by_label("I confirm this action").evaluate("el => !el.validity.valid")
    dialog.get_by_label("I confirm this action").check()
    dialog.get_by_role("button", name="Confirm").click()
    dialog.get_by_role("heading", name="Done: the audit record").wait_for()
    shown = dialog.inner_text()
    assert "stripe.event.replay" in shown or "replay" in shown
    assert "SUP-1234" in shown and "customer asked twice" in shown
    records = api(local_stack.base_url, data.admin_key, "GET", "/admin/audit?customer_id=_stripe&limit=50")[
        "data"
    ]
    mine = [r for r in records if r["target"] == data.stripe_event_id]
    assert mine and mine[0]["ticket"] == "SUP-1234" and mine[0]["id"] in shown
    dialog.get_by_role("button", name="Close").click()


def test_redrive_a_dlq_moves_the_message_back_and_the_event_is_counted(
    local_stack: Any, data: ConsoleData, page: Any
) -> None:
    base = local_stack.base_url
    sign_in(page, base, data.admin_key)
    page.get_by_role("link", name="Dead-letter queues").click()
    table = page.get_by_role("table", name="Dead-letter queues")
    row = table.get_by_role("row").filter(has=page.get_by_role("cell", name="IngestDLQ", exact=True))
    assert row.get_by_role("cell").nth(2).inner_text() == "1"
    _page_checked(page)
    row.get_by_role("button", name="Redrive IngestDLQ").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Reason").fill("worker fix deployed")
    dialog.get_by_label("Ticket").fill("INC-77")
    dialog.get_by_label("I confirm this action").check()
    dialog.get_by_role("button", name="Confirm").click()
    dialog.get_by_role("heading", name="Done: the audit record").wait_for()
    assert "dlq.redrive" in dialog.inner_text() and "INC-77" in dialog.inner_text()
    dialog.get_by_role("button", name="Close").click()
    depths = {q["name"]: q["depth"] for q in api(base, data.admin_key, "GET", "/admin/dlqs")["data"]}
    assert depths["IngestDLQ"] == 0
    path = f"/v1/events/{data.dlq_transaction_id}?customer_id={data.customer_id}"
    event = until("the redriven event counted", lambda: found(base, data.admin_key, path))
    assert event["status"] == "accepted"


def test_list_a_customers_webhook_events_and_open_one(local_stack: Any, data: ConsoleData, page: Any) -> None:
    page.problems.clear()  # the refused keys of the earlier tests logged their 401 and 403
    sign_in(page, local_stack.base_url, data.admin_key)
    page.get_by_role("link", name="Webhooks").click()
    page.get_by_label("Customer id (or _global)").fill(data.customer_id)
    page.get_by_label("Event type (optional)").fill("customer.created")
    page.keyboard.press("Enter")
    listed = page.get_by_role("table", name=f"Webhook events of {data.customer_id}, newest first")
    listed.wait_for()
    assert listed.get_by_role("link").all_inner_texts() == [data.webhook_event_id]
    _page_checked(page)
    # a type the customer has no event of lists nothing
    page.get_by_label("Event type (optional)").fill("invoice.paid")
    page.keyboard.press("Enter")
    expect(listed.get_by_role("link")).to_have_count(0)
    page.get_by_label("Event type (optional)").fill("")
    page.keyboard.press("Enter")
    listed.get_by_role("link", name=data.webhook_event_id).click()
    page.get_by_role("heading", level=1, name=f"Webhook event {data.webhook_event_id}").wait_for()
    page.get_by_role("table", name="Attempts").wait_for()
    page.get_by_role("button", name="Resend event").wait_for()
    _page_checked(page)
    assert page.problems == [], page.problems


def test_resend_a_webhook_event_after_reading_its_failed_delivery(
    local_stack: Any, data: ConsoleData, page: Any
) -> None:
    sign_in(page, local_stack.base_url, data.admin_key)
    page.get_by_role("link", name="Webhooks").click()
    page.get_by_label("Webhook event id (evt_…)").fill(data.webhook_event_id)
    page.keyboard.press("Enter")
    attempts = page.get_by_role("table", name="Attempts")
    attempts.wait_for()
    assert page.get_by_role("table", name="Deliveries").get_by_role("row").count() >= 2
    _page_checked(page)
    page.get_by_role("button", name="Resend event").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Reason").fill("endpoint back up")
    dialog.get_by_label("Ticket").fill("SUP-9")
    dialog.get_by_label("I confirm this action").check()
    dialog.get_by_role("button", name="Confirm").click()
    dialog.get_by_role("heading", name="Done: the audit record").wait_for()
    assert "webhook.resend" in dialog.inner_text() and "SUP-9" in dialog.inner_text()
    dialog.get_by_role("button", name="Close").click()


MARKUP = "<img src=x id=injected></script><script id=injected2>1</script>"


def test_stored_markup_is_shown_as_text_never_as_html(local_stack: Any, data: ConsoleData, page: Any) -> None:
    # GIVEN a customer whose name and email hold markup
    base = local_stack.base_url
    customer = {"external_id": "console-markup", "name": MARKUP, "currency": "USD"}
    if not found(base, data.admin_key, "/v1/customers/console-markup"):
        api(base, data.admin_key, "POST", "/v1/customers", customer)
    sign_in(page, base, data.admin_key)
    # WHEN the console lists it and shows its page THEN the markup is text: no element was made from it
    page.goto(base + "/console#/customers")
    page.get_by_role("cell", name=MARKUP).wait_for()
    page.goto(base + "/console#/customers/console-markup")
    page.get_by_text(MARKUP, exact=True).wait_for()
    assert page.evaluate("document.querySelectorAll('#injected, #injected2').length") == 0


def test_a_key_without_the_read_scope_is_told_so_and_a_bad_route_is_not_found(
    local_stack: Any, data: ConsoleData, page: Any
) -> None:
    from neruba import bootstrap

    base = local_stack.base_url
    admin_only, _ = bootstrap.keys().create(frozenset({"admin"}), name="console admin-only")
    # GIVEN a key with the admin scope only WHEN it opens pages that read /v1 routes
    sign_in(page, base, admin_only)
    page.problems.clear()  # signing in probed a read route: its 403 is how the scopes are found
    for route in ("overview", "customers", "customers/console-acme", "events"):
        page.goto(base + f"/console#/{route}")
        expect(page.locator("[aria-busy=true]")).to_have_count(0)
    # THEN each says which scope it needs instead of failing its reads one by one
    page.get_by_text("sign in with a key that has the read scope", exact=False).first.wait_for()
    assert page.get_by_role("alert").count() == 0
    # AND a route the browser cannot decode is "Not found", never a script error
    page.goto(base + "/console#/customers/%E0%A4%A")
    page.get_by_role("heading", level=1, name="Not found").wait_for()
    assert page.problems == [], page.problems


def test_every_page_has_labels_names_and_no_script_errors(
    local_stack: Any, data: ConsoleData, page: Any
) -> None:
    page.problems.clear()  # the refused keys of the earlier tests logged their 401 and 403
    sign_in(page, local_stack.base_url, data.admin_key)
    # the overview reads the alarms in alarm (the local stack has no CloudWatch alarms: none)
    page.get_by_text("Alarms in alarm: none.").wait_for()
    for route in ("overview", "customers", "events", "stripe-events", "dlqs", "audit", "webhooks"):
        page.goto(local_stack.base_url + f"/console#/{route}")
        expect(page.locator("[aria-busy=true]")).to_have_count(0)
        _page_checked(page)
    assert page.problems == [], page.problems


def _bar_values(page: Any, chart: str, series: str) -> dict[str, int]:
    """The bars of one series of a chart, by the start of their bucket (each bar's title reads
    ``START SERIES: VALUE``)."""
    titles = page.locator(f'svg[aria-label="{chart}"] rect > title').all_text_contents()
    found: dict[str, int] = {}
    for title in titles:
        start, _, value = title.partition(f" {series}: ")
        if value:
            found[start] = found.get(start, 0) + int(value)
    return found
