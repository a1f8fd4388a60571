"""Threshold invoicing records in the billing table (``logic/billing/threshold.py`` uses them).

- ``THR#{subscription}`` / ``{period_start}`` - what threshold invoices billed of one period so far: how
  many were issued, the amount, and per line of the rating the quantity and amount billed, with the
  invoices (id, cut, amount) in order. Written only by a threshold invoice's own transaction.
- ``thresholds_issued`` on the billing state ``BST#{subscription}`` / ``#``: how many threshold invoices
  the subscription has had (never reset). Every threshold invoice's transaction adds one to it
  (``BillingRepository.threshold_claim_item``), on the condition that the state still has the period's
  window next and the count is the one read; the period-end invoice's advance carries the count it read
  in its condition (``BillingRepository.advance_item``). The two writes therefore serialise on one item:
  a threshold invoice never lands after (or beside) the period-end invoice that deducts what was billed
  before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from neruba import jsonutil
from neruba.dal.clients import client
from neruba.dal.dynamo import from_item, to_item


@dataclass(frozen=True, slots=True)
class BilledLine:
    """What the threshold invoices of a period billed for one line of its rating, in all."""

    quantity: Decimal
    amount_minor: int


@dataclass(frozen=True, slots=True)
class ThresholdInvoiceRef:
    """One threshold invoice of the period: its id, the cut it rated usage to, what it billed."""

    invoice_id: str
    n: int
    cut_at: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class PeriodThresholds:
    """What threshold invoices billed of one period of a subscription (nothing yet: ``count`` 0)."""

    subscription_id: str
    customer_id: str
    period_start: str
    period_end: str
    count: int = 0
    billed_minor: int = 0
    lines: dict[str, BilledLine] = field(default_factory=dict)
    invoices: tuple[ThresholdInvoiceRef, ...] = ()

    def to_doc(self) -> dict[str, Any]:
        return {
            "subscription_id": self.subscription_id,
            "customer_id": self.customer_id,
            "period_start": self.period_start,
            "period_end": self.period_end,
            "count": self.count,
            "billed_minor": self.billed_minor,
            "lines": {
                k: {"quantity": str(v.quantity), "amount_minor": v.amount_minor}
                for k, v in self.lines.items()
            },
            "invoices": [
                {"invoice_id": i.invoice_id, "n": i.n, "cut_at": i.cut_at, "amount_minor": i.amount_minor}
                for i in self.invoices
            ],
        }


def period_record(doc: dict[str, Any]) -> PeriodThresholds:
    """A stored period record (its ``doc``) as a typed record."""
    return PeriodThresholds(
        subscription_id=str(doc["subscription_id"]),
        customer_id=str(doc["customer_id"]),
        period_start=str(doc["period_start"]),
        period_end=str(doc["period_end"]),
        count=int(doc["count"]),
        billed_minor=int(doc["billed_minor"]),
        lines={
            str(k): BilledLine(Decimal(str(v["quantity"])), int(v["amount_minor"]))
            for k, v in dict(doc.get("lines") or {}).items()
        },
        invoices=tuple(
            ThresholdInvoiceRef(str(i["invoice_id"]), int(i["n"]), str(i["cut_at"]), int(i["amount_minor"]))
            for i in doc.get("invoices") or []
        ),
    )


class ThresholdsRepository:
    """The period records of threshold invoicing and their writes on the billing state."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    @staticmethod
    def _key(subscription_id: str, period_start: str) -> dict[str, Any]:
        return {"pk": {"S": f"THR#{subscription_id}"}, "sk": {"S": period_start}}

    def period(self, subscription_id: str, period_start: str) -> PeriodThresholds | None:
        """The period's record (a consistent read), or None when no threshold invoice billed it."""
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key=self._key(subscription_id, period_start), ConsistentRead=True
        )
        if "Item" not in response:
            return None
        return period_record(jsonutil.loads(from_item(response["Item"])["doc"]))

    def put_item(self, record: PeriodThresholds) -> dict[str, Any]:
        """A Put of the period's record as the new threshold invoice leaves it (its transaction's count
        condition on the billing state makes the read it was built from the current one)."""
        item = {
            **{k: v["S"] for k, v in self._key(record.subscription_id, record.period_start).items()},
            "count": record.count,
            "doc": jsonutil.dumps(record.to_doc()),
        }
        return {"Put": {"TableName": self.table_name, "Item": to_item(item)}}
