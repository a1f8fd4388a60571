"""What credit may pay on an invoice, and which ledger posting an invoice amount makes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from neruba.domain.credits import CreditApplication, Line
from neruba.logic.billing.context import PostingRequest, posting_for
from neruba.logic.billing.worker import creditable_lines

T = datetime(2026, 3, 1, tzinfo=UTC)


def _line(line_id: str, amount: int) -> dict[str, object]:
    return {"line_id": line_id, "meter_code": "api_calls", "amount_minor": amount}


def test_credit_pays_chargeable_lines_only_and_never_more_than_the_subtotal() -> None:
    # GIVEN charges of 800 and 300 and a proration credit of -500 (subtotal 600)
    lines = [_line("a", 800), _line("p", -500), _line("b", 300)]

    # WHEN the creditable lines are computed
    creditable = creditable_lines(lines, 600)

    # THEN credit may pay 600 in all, from the first charge, and never the negative line
    assert creditable == [Line("a", "api_calls", 600)]
    assert creditable_lines(lines, -100) == []
    assert creditable_lines([_line("a", 800), _line("b", 300)], 1100) == [
        Line("a", "api_calls", 800),
        Line("b", "api_calls", 300),
    ]


def test_postings_of_positive_zero_and_negative_invoice_amounts() -> None:
    # GIVEN / WHEN / THEN a positive subtotal posts the invoice (revenue, credit used, receivable)
    applied = [CreditApplication("cg_1", "a", 300, "promotional")]
    posting = posting_for(PostingRequest("acme", "in_1", "USD", 1000, applied, T))
    assert posting is not None and posting.idempotency_key == "invoice:in_1"
    assert posting.deltas()["receivable"] == 700 and posting.deltas()["revenue"] == -1000
    # zero posts nothing
    assert posting_for(PostingRequest("acme", "in_1", "USD", 0, [], T)) is None
    # a negative revision is a separate reduction posting, keyed by the revision
    reduction = posting_for(PostingRequest("acme", "in_1", "USD", -250, [], T, revision=2))
    assert reduction is not None and reduction.idempotency_key == "invoice:in_1:rev2"
    assert (reduction.reason, reduction.deltas()["receivable"], reduction.deltas()["revenue"]) == (
        "invoice_reduction",
        -250,
        250,
    )
    # credit is never applied to a non-positive amount
    with pytest.raises(ValueError, match="positive subtotal"):
        posting_for(PostingRequest("acme", "in_1", "USD", -250, applied, T))
