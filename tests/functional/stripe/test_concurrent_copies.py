"""Copies of one Stripe event processed at the same moment (several deliveries queued it several times):
exactly one processing runs, and the event keeps the outcome of that processing (``applied``)."""

from __future__ import annotations

import threading
from typing import Any

from tests.support.invoices import Books
from tests.support.stripe_events import invoice_paid


def test_four_copies_at_once_process_the_event_once_and_keep_applied(
    deliver: Any, ports: Books, stored: Any, atomic_requests: None
) -> None:
    from neruba.bootstrap import stripe_processor as processor
    from neruba.logic.stripe.processing import EventBusyError

    paid = invoice_paid(amount=5000)
    deliver(paid)
    start = threading.Barrier(4)
    results: list[Any] = []

    def copy() -> None:
        start.wait()
        try:
            results.append(processor().process(paid["id"], trigger="queue"))
        except EventBusyError as exc:  # another copy holds the event: this message is retried later
            results.append(exc)

    threads = [threading.Thread(target=copy) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    record = stored(paid["id"])
    # THEN one attempt was recorded, and it is the one that applied the payment
    assert record["attempts"] == 1, record["history"]
    assert record["status"] == "processed" and "applied" in record["outcome"]
    assert "already_applied" not in record["outcome"]
    assert ports.total("in_ours_1", "payment") == 5000
    # AND a copy retried after the first settled reads the settled event and changes nothing
    again = processor().process(paid["id"], trigger="queue")
    assert again.status == "processed" and stored(paid["id"])["attempts"] == 1
