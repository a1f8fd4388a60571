"""Small, honest stand-ins for the pricing engine, credits and the ledger, for billing tests and the
billing benchmark: a rater that prices the api_calls hourly aggregates of a window at 0.10 each (it reads
aggregates, never events), an opening fee, one credit grant spent by a conditional decrement, and one
balanced posting item per invoice under its idempotency key. :class:`FakeBilling` is the billing context
with those in place of ``neruba.logic.billing.context.Billing``'s real pricing, credits and postings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from neruba.dal.clients import client
from neruba.dal.dynamo import from_item, to_item
from neruba.domain.credits import CreditApplication
from neruba.domain.credits import Line as ChargeLine
from neruba.logic.billing.context import Billing, CreditsResult, PostingRequest
from neruba.settings import get_settings

START = datetime(2026, 3, 1, tzinfo=UTC)
UNIT_PRICE_MINOR = 10  # per API call
OPENING_FEE_MINOR = 1000


def add_days(anchor: datetime, interval: str, n: int) -> datetime:
    """Daily windows for tests (the plan's interval is ignored on purpose)."""
    return anchor + timedelta(days=n)


@dataclass(frozen=True)
class Line:
    line_id: str
    kind: str
    meter_code: str | None
    quantity: Decimal
    amount_minor: int
    hours: int = 0
    events: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "line_id": self.line_id,
            "kind": self.kind,
            "description": self.kind,
            "meter_code": self.meter_code,
            "group": {},
            "quantity": self.quantity,
            "unit_price": Decimal("0.10") if self.kind == "usage" else None,
            "tiers": [],
            "amount_minor": self.amount_minor,
            "plan_code": "basic",
            "plan_version": 1,
            "source": {"hours": self.hours, "events": self.events, "aggregation": "count"},
        }


@dataclass(frozen=True)
class Rated:
    currency: str
    lines: list[Line]

    @property
    def subtotal_minor(self) -> int:
        return sum(line.amount_minor for line in self.lines)


def usage_rater() -> Any:
    """Prices the api_calls aggregates of the window's hours at 0.10 each (reads aggregates, not events)."""

    def rate(subscription: dict[str, Any], start: datetime, end: datetime) -> Rated:
        table = client("dynamodb")
        first, last = start.strftime("%Y-%m-%dT%H"), (end - timedelta(hours=1)).strftime("%Y-%m-%dT%H")
        items = table.query(
            TableName=get_settings().usage_table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues={
                ":pk": {"S": f"AGG#{subscription['customer_id']}#api_calls"},
                ":lo": {"S": first},
                ":hi": {"S": last + "#\uffff"},
            },
            ConsistentRead=True,
        )["Items"]
        count = sum(int(from_item(i)["n"]) for i in items)
        line = Line(
            "usage:api_calls::0",
            "usage",
            "api_calls",
            Decimal(count),
            count * UNIT_PRICE_MINOR,
            len(items),
            count,
        )
        return Rated("USD", [line])

    return rate


def opening_rater() -> Any:
    def rate(subscription: dict[str, Any], start: datetime, end: datetime) -> Rated:
        return Rated("USD", [Line("fixed_fee:basic:0", "fixed_fee", None, Decimal(1), OPENING_FEE_MINOR)])

    return rate


def grant_credits(customer_id: str, amount_minor: int) -> None:
    client("dynamodb").put_item(
        TableName=get_settings().ledger_table,
        Item=to_item({"pk": f"GRANT#{customer_id}", "sk": "g1", "remaining": amount_minor}),
    )


def credits_from_one_grant(
    customer_id: str, currency: str, lines: Sequence[ChargeLine], at: datetime
) -> CreditsResult:
    """Spends the customer's single grant (if any) on the lines in order; the decrement is conditional."""
    table = get_settings().ledger_table
    got = client("dynamodb").get_item(
        TableName=table, Key={"pk": {"S": f"GRANT#{customer_id}"}, "sk": {"S": "g1"}}, ConsistentRead=True
    )
    remaining = int(got["Item"]["remaining"]["N"]) if "Item" in got else 0
    applications = []
    for line in lines:
        take = min(remaining, line.amount_minor)
        if take > 0:
            applications.append(CreditApplication("g1", line.line_id, take))
            remaining -= take
    spent = sum(a.amount_minor for a in applications)
    items = []
    if spent:
        items.append(
            {
                "Update": {
                    "TableName": table,
                    "Key": {"pk": {"S": f"GRANT#{customer_id}"}, "sk": {"S": "g1"}},
                    "UpdateExpression": "SET remaining = remaining - :s",
                    "ConditionExpression": "remaining >= :s",
                    "ExpressionAttributeValues": {":s": {"N": str(spent)}},
                }
            }
        )
    return CreditsResult(list(applications), items)


def one_posting_item() -> Any:
    """One balanced posting item per invoice (or revision), keyed by its idempotency key."""

    def build(request: PostingRequest) -> list[dict[str, Any]]:
        credited = sum(a.amount_minor for a in request.applications)
        entries = [
            {"account": "receivable", "debit": request.subtotal_minor - credited, "credit": 0},
            {"account": "prepaid_credit", "debit": credited, "credit": 0},
            {"account": "revenue", "debit": 0, "credit": request.subtotal_minor},
        ]
        item = {
            "pk": f"POST#{request.posting_key}",
            "sk": "#",
            "invoice_id": request.invoice_id,
            "entries": json.dumps(entries),
        }
        return [
            {
                "Put": {
                    "TableName": get_settings().ledger_table,
                    "Item": to_item(item),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]

    return build


def postings() -> list[dict[str, Any]]:
    items = client("dynamodb").scan(TableName=get_settings().ledger_table)["Items"]
    return [from_item(i) for i in items if i["pk"]["S"].startswith("POST#")]


def assert_ledger_balanced() -> None:
    for posting in postings():
        entries = json.loads(posting["entries"])
        assert sum(e["debit"] for e in entries) == sum(e["credit"] for e in entries), posting


class FakeRatingBilling(Billing):
    """The billing context with the test raters above and daily windows; the real credits, ledger
    postings and auto top-up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("add_interval", add_days)
        super().__init__(*args, **kwargs)
        self._rate_window = usage_rater()
        self._rate_opening = opening_rater()

    def rate_window(self, subscription: dict[str, Any], start: datetime, end: datetime) -> Any:
        return self._rate_window(subscription, start, end)

    def rate_opening(self, subscription: dict[str, Any], start: datetime, end: datetime) -> Any:
        return self._rate_opening(subscription, start, end)


class FakeBilling(FakeRatingBilling):
    """The billing context on all the stand-ins above, with daily windows and no auto top-up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_top_up", False)
        super().__init__(*args, **kwargs)
        self._postings = one_posting_item()

    def apply_credits(
        self, customer_id: str, currency: str, lines: Sequence[ChargeLine], at: datetime
    ) -> CreditsResult:
        return credits_from_one_grant(customer_id, currency, lines, at)

    def invoice_posting_items(self, request: PostingRequest) -> list[dict[str, Any]]:
        return self._postings(request)  # type: ignore[no-any-return]
