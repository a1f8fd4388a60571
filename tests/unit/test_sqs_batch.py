"""Partial batch responses of the SQS workers (neruba.sqs)."""

from __future__ import annotations

from typing import Any

import pytest

from neruba.sqs import BatchFailedError, SQSMessage, process_batch, run_records


def _event(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {"messageId": f"m{i}", "body": body, "attributes": {"ApproximateReceiveCount": str(i + 1)}}
            for i, body in enumerate(bodies)
        ]
    }


def _handle(seen: list[str]) -> Any:
    def handle(message: SQSMessage) -> None:
        seen.append(message.message_id)
        if message.body.startswith("bad"):
            raise ValueError(message.body)

    return handle


def test_only_the_records_that_raised_are_reported_and_every_record_runs_in_order() -> None:
    # GIVEN a batch whose second and fourth records fail
    seen: list[str] = []
    # WHEN it is processed
    response = process_batch(_event("ok", "bad 1", "ok", "bad 2"), _handle(seen))
    # THEN every record ran once, in order, and only the failed ones are named for redelivery
    assert seen == ["m0", "m1", "m2", "m3"]
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m3"}]}


def test_a_batch_where_every_record_failed_fails_the_invocation() -> None:
    # GIVEN a batch where every record fails
    # WHEN it is processed
    with pytest.raises(BatchFailedError) as raised:
        process_batch(_event("bad a", "bad b"), _handle([]))
    # THEN the invocation fails naming each error, chained to the last one
    assert "All 2 records failed" in str(raised.value) and "bad a" in str(raised.value)
    assert [str(e) for e in raised.value.errors] == ["bad a", "bad b"]
    assert isinstance(raised.value.__cause__, ValueError)


def test_a_fully_successful_batch_reports_nothing() -> None:
    assert process_batch(_event("ok", "ok"), _handle([])) == {"batchItemFailures": []}


@pytest.mark.parametrize("event", [{}, {"Records": []}, {"Records": "x"}])
def test_an_event_without_records_is_not_an_sqs_batch(event: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="non-empty Records"):
        process_batch(event, _handle([]))


def test_run_records_leaves_the_all_failed_decision_to_the_caller() -> None:
    # GIVEN a batch where every record fails, run without process_batch (the ingest worker's way)
    result = run_records(_event("bad")["Records"], _handle([]))
    # THEN the failures are collected, and raising is a separate step
    assert result.failed == ["m0"]
    with pytest.raises(BatchFailedError):
        result.raise_if_all_failed()


def test_message_fields() -> None:
    message = SQSMessage(_event("a", "b")["Records"][1])
    assert (message.message_id, message.body, message.receive_count) == ("m1", "b", 2)
    assert SQSMessage({"messageId": "x", "body": ""}).receive_count == 1
