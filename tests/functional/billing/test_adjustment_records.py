"""Adjustments read back from the billing table: identified by their ``key``, never by storage names."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

from neruba import bootstrap
from neruba.dal.billing import Adjustment
from neruba.dal.transaction import Transaction, commit

NOW = datetime(2026, 3, 5, tzinfo=UTC)


def adjustment(key: str) -> Adjustment:
    return Adjustment(
        key=key,
        original_invoice_id="in_1",
        original_line_id="li_1",
        status="pending",
        applied_to=None,
        created_at="2026-03-05T00:00:00Z",
        line={"line_id": "li_1", "amount_minor": 120, "quantity": "12"},
    )


def test_an_adjustment_reads_back_with_its_key_and_no_storage_attributes(aws: dict[str, str]) -> None:
    # GIVEN a pending adjustment recorded on a subscription
    repo = bootstrap.billing_records()
    unit = Transaction()
    unit.add(repo.adjustment_put_item("sub_1", adjustment("in_1#li_1#000")))
    commit(unit)
    # WHEN it is read back
    [found] = repo.adjustments("sub_1")
    # THEN it carries its key, its line as written, and none of the table's key attributes
    assert found == adjustment("in_1#li_1#000")
    assert found.line["amount_minor"] == 120
    assert not {"pk", "sk"} & {f.name for f in fields(found)}
    # AND the key is the one applying it: the pending adjustment becomes applied to the invoice
    unit = Transaction()
    unit.add(repo.adjustment_apply_item("sub_1", found.key, "in_2"))
    commit(unit)
    [applied] = repo.adjustments("sub_1")
    assert (applied.status, applied.applied_to) == ("applied", "in_2")
