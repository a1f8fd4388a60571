"""Operator routes on Stripe events: list with filters, inspect, audited idempotent replay, admin only."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from tests.support.invoices import Books
from tests.support.stripe_events import charge_refunded, event, invoice_paid


def _audit_items() -> list[dict[str, Any]]:
    """Every audit record (the shared ``AuditRepository`` format), with its partition key."""
    items = boto3.client("dynamodb").scan(TableName="test-OpsTable")["Items"]
    return [
        {"pk": i["pk"]["S"], **json.loads(i["doc"]["S"])} for i in items if i["pk"]["S"].startswith("AUD#")
    ]


def _replay(admin: Any, event_id: str, reason: str = "ledger fixed, re-run", **kw: Any) -> tuple[int, Any]:
    return admin(
        "POST",
        f"/admin/stripe-events/{event_id}/replay",
        path_parameters={"event_id": event_id},
        body={"reason": reason},
        **kw,
    )


def test_replaying_a_processed_payment_posts_nothing_and_is_audited(
    deliver: Any, process: Any, ports: Books, admin: Any, stored: Any
) -> None:
    # GIVEN a processed invoice.paid
    paid = invoice_paid()
    deliver(paid)
    process()
    postings = dict(ports.postings)
    # WHEN an operator replays it (with a ticket and an Idempotency-Key)
    replay = {
        "method": "POST",
        "path": f"/admin/stripe-events/{paid['id']}/replay",
        "path_parameters": {"event_id": paid["id"]},
        "body": {"reason": "ledger fixed, re-run", "ticket": "OPS-7"},
        "headers": {"Idempotency-Key": "replay-audited"},
    }
    status, body = admin(**replay)
    # THEN the answer shows it processed again, no new posting exists, the history has the replay
    assert status == 200, body
    assert body["status"] == "processed" and "already_applied" in body["outcome"]
    assert ports.postings == postings and len(postings) == 1
    assert [h["trigger"] for h in stored(paid["id"])["history"]] == ["queue", "replay"]
    assert stored(paid["id"])["attempts"] == 2
    # AND one audit record under the customer names the actor, reason, ticket, target and before/after
    (audit,) = _audit_items()
    assert audit["pk"] == "AUD#acme" and audit["customer_id"] == "acme"
    assert audit["actor"] == "key:0123456789ab" and audit["action"] == "stripe_event.replay"
    assert audit["target"] == paid["id"] and audit["reason"] == "ledger fixed, re-run"
    assert audit["ticket"] == "OPS-7"
    assert audit["before"]["status"] == "processed" and audit["before"]["attempts"] == 1
    assert audit["after"]["status"] == "processed" and audit["after"]["attempts"] == 2
    assert "already_applied" in audit["after"]["outcome"] and audit["request_id"]
    # AND the same request again (same Idempotency-Key) writes nothing
    admin(**replay)
    assert len(_audit_items()) == 1 and stored(paid["id"])["attempts"] == 2


def test_replay_of_a_deferred_refund_after_the_payment_posts_it_once(
    deliver: Any, process: Any, ports: Books, admin: Any
) -> None:
    # GIVEN a deferred refund, then its payment processed (which already wakes the refund)
    refund = charge_refunded()
    deliver(refund)
    process()
    deliver(invoice_paid())
    process()
    # WHEN an operator also replays the refund
    status, body = _replay(admin, refund["id"])
    # THEN still exactly one refund posting
    assert status == 200 and body["status"] == "processed"
    assert ports.kinds() == ["payment", "refund"]


def test_replay_with_an_idempotency_key_answers_the_first_result(
    deliver: Any, process: Any, ports: Books, admin: Any, stored: Any
) -> None:
    paid = invoice_paid()
    deliver(paid)
    process()
    # GIVEN a replay sent with an Idempotency-Key
    headers = {"Idempotency-Key": "replay-1"}
    first = _replay(admin, paid["id"], headers=headers)
    # WHEN it is retried with the same key THEN same answer, no new attempt or audit record
    again = _replay(admin, paid["id"], headers=headers)
    assert first == again and first[0] == 200
    assert stored(paid["id"])["attempts"] == 2 and len(_audit_items()) == 1
    # WHEN the key is reused with another reason THEN 409
    status, body = _replay(admin, paid["id"], reason="something else", headers=headers)
    assert status == 409 and body["error"]["code"] == "idempotency_conflict"


def test_replay_needs_a_reason_and_an_existing_event(admin: Any, ports: Books) -> None:
    status, _ = admin(
        "POST", "/admin/stripe-events/evt_x/replay", path_parameters={"event_id": "evt_x"}, body={}
    )
    assert status == 422
    status, body = _replay(admin, "evt_missing")
    assert status == 404 and body["error"]["code"] == "stripe_event_not_found"


def test_list_filters_by_type_status_and_time_and_pages(
    deliver: Any, process: Any, ports: Books, admin: Any
) -> None:
    # GIVEN events over three months: payments (processed), an unknown type (ignored), a refund (deferred)
    now = datetime.now(UTC).replace(microsecond=0)
    stamps = [int((now - timedelta(days=d)).timestamp()) for d in (70, 40, 10, 1)]
    old_paid = invoice_paid(invoice_id="in_other", created=stamps[0])
    ignored = event("customer.created", {"id": "cus_1"}, created=stamps[1])
    paid = invoice_paid(created=stamps[2])
    deferred = charge_refunded(charge="ch_unknown", created=stamps[3])
    for payload in (old_paid, ignored, paid, deferred):
        assert deliver(payload)[0] == 200
    process()

    def ids(query: dict[str, str]) -> list[str]:
        status, body = admin("GET", "/admin/stripe-events", query=query)
        assert status == 200, body
        return [e["id"] for e in body["data"]]

    # THEN newest first across month partitions, and each filter narrows the list
    assert ids({}) == [deferred["id"], paid["id"], ignored["id"], old_paid["id"]]
    assert ids({"type": "invoice.paid"}) == [paid["id"], old_paid["id"]]
    assert ids({"status": "deferred"}) == [deferred["id"]]
    assert ids({"status": "ignored"}) == [ignored["id"]]
    since = (now - timedelta(days=45)).isoformat()
    until = (now - timedelta(days=5)).isoformat()
    assert ids({"from": since, "to": until}) == [paid["id"], ignored["id"]]
    # AND pages follow starting_after
    status, first = admin("GET", "/admin/stripe-events", query={"limit": "2"})
    assert first["has_more"] is True and first["next_cursor"] == paid["id"]
    status, second = admin(
        "GET", "/admin/stripe-events", query={"limit": "2", "starting_after": first["next_cursor"]}
    )
    assert [e["id"] for e in second["data"]] == [ignored["id"], old_paid["id"]] and second[
        "has_more"
    ] is False
    assert "payload" not in second["data"][0]
    # AND bad ranges are clean 4xx
    status, body = admin("GET", "/admin/stripe-events", query={"from": until, "to": since})
    assert status == 400 and body["error"]["code"] == "invalid_range"
    status, body = admin("GET", "/admin/stripe-events", query={"status": "weird"})
    assert status == 422


def test_get_shows_payload_and_history(deliver: Any, process: Any, ports: Books, admin: Any) -> None:
    paid = invoice_paid()
    deliver(paid)
    process()
    status, body = admin(
        "GET", f"/admin/stripe-events/{paid['id']}", path_parameters={"event_id": paid["id"]}
    )
    assert status == 200
    assert body["payload"] == paid and body["status"] == "processed" and len(body["history"]) == 1
    status, body = admin("GET", "/admin/stripe-events/evt_nope", path_parameters={"event_id": "evt_nope"})
    assert status == 404


def test_every_route_is_admin_only(deliver: Any, ports: Books, admin: Any, stored: Any) -> None:
    paid = invoice_paid()
    deliver(paid)
    # GIVEN a key with read and ingest scopes but not admin
    calls = [
        admin("GET", "/admin/stripe-events", scopes="read ingest"),
        admin(
            "GET",
            f"/admin/stripe-events/{paid['id']}",
            path_parameters={"event_id": paid["id"]},
            scopes="read",
        ),
        _replay(admin, paid["id"], scopes="read ingest"),
    ]
    # THEN each is 403 and the replay changed nothing
    for status, body in calls:
        assert status == 403 and body["error"]["code"] == "insufficient_scope"
    assert stored(paid["id"])["attempts"] == 0 and _audit_items() == []
    assert ports.postings == {}


def test_a_replay_whose_answer_was_lost_after_its_transaction_is_not_run_twice(
    deliver: Any, process: Any, ports: Books, admin: Any, stored: Any
) -> None:
    from unittest import mock

    from neruba.dal.clients import client

    paid = invoice_paid()
    deliver(paid)
    process()
    # GIVEN a replay with an Idempotency-Key whose transaction commits and whose answer is then lost
    dynamodb = client("dynamodb")
    real = dynamodb.transact_write_items
    lost = [1]

    def commits_then_loses_the_answer(**kwargs: Any) -> Any:
        answer = real(**kwargs)
        if lost:
            lost.pop()
            raise ConnectionError("connection lost after the commit")
        return answer

    headers = {"Idempotency-Key": "replay-lost"}
    with mock.patch.object(dynamodb, "transact_write_items", side_effect=commits_then_loses_the_answer):
        _replay(admin, paid["id"], headers=headers)
    # WHEN the operator retries with the same key
    status, body = _replay(admin, paid["id"], headers=headers)
    # THEN the first answer comes back: the replay ran once, with one audit record
    assert status == 200 and body["status"] == "processed"
    assert stored(paid["id"])["attempts"] == 2 and len(_audit_items()) == 1


def test_attempts_is_a_whole_number_in_the_list_and_the_detail(
    deliver: Any, process: Any, admin: Any, ports: Books
) -> None:
    from tests.support.stripe_events import invoice_paid

    paid = invoice_paid(amount=5000)
    deliver(paid)
    process()
    status, listed = admin("GET", "/admin/stripe-events")
    assert status == 200
    row = next(e for e in listed["data"] if e["id"] == paid["id"])
    assert row["attempts"] == 1 and isinstance(row["attempts"], int)
    status, one = admin("GET", f"/admin/stripe-events/{paid['id']}")
    assert status == 200 and one["attempts"] == 1 and isinstance(one["attempts"], int)


def test_the_audit_record_of_a_replay_of_no_customer_is_readable_through_the_api(
    deliver: Any, process: Any, admin: Any
) -> None:
    from functions.ledger_api.app import lambda_handler
    from tests.support.api import api_event, call

    # GIVEN a processed Stripe event that names none of our customers, replayed by an operator
    other = event("charge.succeeded", {"id": "ch_nobody", "object": "charge"})
    deliver(other)
    process()
    status, _ = _replay(admin, other["id"])
    assert status == 200
    (record,) = _audit_items()
    assert record["pk"] == "AUD#_stripe"
    # WHEN the operator reads that audit partition through the API
    query = {"customer_id": "_stripe", "limit": "10"}
    status, body, _ = call(lambda_handler, api_event("GET", "/admin/audit", query=query, scopes="admin"))
    # THEN the replay's record is there (the partition name is accepted like _global)
    assert status == 200, body
    assert [(r["action"], r["target"]) for r in body["data"]] == [("stripe_event.replay", other["id"])]
