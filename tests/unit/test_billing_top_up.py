"""The top-up invoice document and its ids (no AWS)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from neruba.domain.credits import TopUpRequest
from neruba.logic.billing.top_up import top_up_grant_key, top_up_invoice, top_up_invoice_id

AT = datetime(2026, 3, 2, 1, tzinfo=UTC)


def _request(request_id: str = "tu_abc") -> TopUpRequest:
    return TopUpRequest(request_id, "acme", "USD", 5000, 700, 1000, AT)


def test_ids_follow_the_request_id() -> None:
    # GIVEN two requests
    # WHEN their ids are derived
    # THEN the same request always names the same invoice and grant key, another request others
    assert top_up_invoice_id("tu_abc") == top_up_invoice_id("tu_abc")
    assert top_up_invoice_id("tu_abc") != top_up_invoice_id("tu_abd")
    assert top_up_invoice_id("tu_abc").startswith("in_") and len(top_up_invoice_id("tu_abc")) == 27
    assert top_up_grant_key("tu_abc") == "topup:tu_abc"


def test_the_invoice_is_a_draft_with_one_top_up_line_all_due() -> None:
    # GIVEN a request for 5000
    # WHEN its invoice document is built
    doc = top_up_invoice(_request(), "cg_1", AT, AT + timedelta(hours=1))

    # THEN one line of kind "topup" of 5000, no credit applied, all of it due, due for finalization
    # after the grace
    assert (doc["id"], doc["kind"], doc["status"], doc["number"]) == (
        top_up_invoice_id("tu_abc"),
        "topup",
        "draft",
        None,
    )
    assert [(line["kind"], line["amount_minor"]) for line in doc["lines"]] == [("topup", 5000)]
    assert (doc["subtotal_minor"], doc["credits_applied_minor"], doc["total_minor"]) == (5000, 0, 5000)
    assert doc["lines"][0]["references"] == {"top_up_request_id": "tu_abc", "grant_id": "cg_1"}
    assert (doc["currency"], doc["customer_id"], doc["applications"]) == ("USD", "acme", [])
    assert doc["finalize_at"] == "2026-03-02T02:00:00.000000Z"
