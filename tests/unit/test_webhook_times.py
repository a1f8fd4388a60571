"""An event's body gives every time in the answer format, whichever format its producer stored."""

from __future__ import annotations

import json

from neruba.logic.webhooks.relay import envelope
from neruba.timefmt import answer_times


def test_the_envelope_writes_created_and_the_payloads_times_with_z() -> None:
    outbox = {
        "id": "evt_" + "0" * 24,
        "type": "subscription.created",
        "customer_id": "acme",
        "created": "2026-03-01T12:00:00.000000Z",
        "data": {
            "created_at": "2026-03-01T12:00:00.250000+00:00",
            "start_at": "2026-03-01T00:00:00+00:00",
            "trial_end": "2026-03-08T00:00:00+02:00",
            "phases": [{"start_at": "2026-03-01T00:00:00.000000Z", "end_at": None}],
            "name": "2026-03-01T12:00:00+00:00",  # not a time field: unchanged
            "period_end": "soon",  # not a time: unchanged
        },
    }
    body = json.loads(envelope(outbox, 7))
    assert body["created"] == "2026-03-01T12:00:00Z"
    assert body["data"]["object"] == {
        "created_at": "2026-03-01T12:00:00.250000Z",
        "start_at": "2026-03-01T00:00:00Z",
        "trial_end": "2026-03-07T22:00:00Z",
        "phases": [{"start_at": "2026-03-01T00:00:00Z", "end_at": None}],
        "name": "2026-03-01T12:00:00+00:00",
        "period_end": "soon",
    }


def test_answer_times_leaves_text_without_an_offset_alone() -> None:
    naive = {"next_at": "2026-03-01T00:00:00", "n": 1}
    assert answer_times(naive) == naive
