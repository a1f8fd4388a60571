"""Screenshots of every console page into docs/console/ (shown by docs/console.md).

    make console-screens        # or: python -m tests.support.console_screens [--out DIR]

Starts a local stack on free ports, makes the data the console tests use (a customer with usage and an
invoice, a stored Stripe event, a message in IngestDLQ), signs in with an admin key in headless Chromium
and saves one PNG per page. Not part of the test run.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tests.support.console import browser_page, seed, sign_in
from tests.support.stack import ROOT, started_local_stack


def _settle(page: Any) -> None:
    from playwright.sync_api import expect

    expect(page.locator("[aria-busy=true]")).to_have_count(0)


def capture(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    with started_local_stack("neruba-screens") as stack, browser_page((1280, 860)) as page:
        data = seed(stack)
        base = stack.base_url + "/console"

        def shot(name: str) -> None:
            _settle(page)
            path = out / f"{name}.png"
            page.screenshot(path=str(path), full_page=True)
            saved.append(path)

        page.goto(base)
        page.evaluate("sessionStorage.clear()")
        page.reload()
        page.get_by_label("API key").wait_for()
        shot("sign-in")
        sign_in(page, stack.base_url, data.admin_key)
        shot("overview")
        page.goto(f"{base}#/customers")
        page.get_by_role("table", name="Customers").wait_for()
        shot("customers")
        page.goto(f"{base}#/customers/{data.customer_id}")
        page.get_by_label("Another meter or range: meter code").fill("api_calls")
        page.get_by_role("button", name="Show usage").click()
        page.get_by_role("table", name="Usage per hour").wait_for()
        shot("customer")
        page.goto(f"{base}#/invoices/{data.invoice_id}")
        page.get_by_role("button", name="Explain").click()
        page.locator("#explanation details").first.wait_for()
        shot("invoice")
        page.goto(f"{base}#/events")
        page.get_by_label("Customer id").fill(data.customer_id)
        page.get_by_label("Transaction id").fill("console-0")
        page.get_by_role("button", name="Look up").click()
        page.get_by_role("table", name="Every copy and its outcome").wait_for()
        shot("events")
        page.goto(f"{base}#/stripe-events")
        shot("stripe-events")
        page.goto(f"{base}#/stripe-events/{data.stripe_event_id}")
        page.get_by_role("button", name="Replay event").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Reason").fill("customer asked twice")
        dialog.get_by_label("Ticket").fill("SUP-1234")
        dialog.get_by_label("I confirm this action").check()
        shot("action-confirm")
        dialog.get_by_role("button", name="Confirm").click()
        dialog.get_by_role("heading", name="Done: the audit record").wait_for()
        shot("action-audit-record")
        dialog.get_by_role("button", name="Close").click()
        page.goto(f"{base}#/dlqs")
        shot("dlqs")
        page.goto(f"{base}#/audit")
        page.get_by_label("Customer id (or _global, _stripe)").fill("_stripe")
        page.get_by_role("button", name="Show").click()
        page.get_by_role("table").wait_for()
        shot("audit")
        page.goto(f"{base}#/webhooks")
        page.get_by_label("Customer id (or _global)").fill(data.customer_id)
        page.get_by_role("button", name="List events").click()
        page.get_by_role("link", name=data.webhook_event_id).wait_for()
        page.get_by_label("Webhook event id (evt_…)").fill(data.webhook_event_id)
        page.get_by_role("button", name="Show deliveries").click()
        page.get_by_role("table", name="Attempts").wait_for()
        shot("webhooks")
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    for path in capture(parser.parse_args().out):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)  # noqa: T201 - what was saved


if __name__ == "__main__":
    main()
