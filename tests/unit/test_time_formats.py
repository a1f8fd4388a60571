"""The exact text of stored times and answered times: a change of format would reorder sort keys, break
comparisons of stored leases and due dates, or change API answers. These pins hold the formats fixed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from neruba.dal.audit import AuditRepository
from neruba.dal.ledger import LedgerRepository
from neruba.domain.credits import CreditGrant
from neruba.logic.billing.windows import Window

AT = datetime(2026, 3, 4, 5, 6, 7, 8, tzinfo=UTC)
WHOLE = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def test_an_audit_record_sorts_by_a_fixed_width_key_and_answers_iso_time() -> None:
    # GIVEN an audit record of an action at a time with microseconds, given in another offset
    local = AT.astimezone(timezone(timedelta(hours=2)))
    put = AuditRepository("ops").record_item(
        actor="key:1",
        action="x",
        customer_id="acme",
        target="t",
        reason=None,
        ticket=None,
        before={},
        after={},
        at=local,
        request_id=None,
        idempotency_key="k1",
    )["Put"]
    # THEN its sort key is fixed-width UTC with microseconds and Z; its document speaks ISO 8601 in UTC
    assert put["Item"]["sk"]["S"].startswith("2026-03-04T05:06:07.000008Z#aud_")
    assert json.loads(put["Item"]["doc"]["S"])["at"] == "2026-03-04T05:06:07.000008+00:00"


def test_a_grant_keeps_fixed_width_times_and_whole_seconds_get_six_zeros() -> None:
    # GIVEN a grant effective on a whole second
    grant = CreditGrant(
        grant_id="cg_1",
        customer_id="acme",
        kind="promotional",
        amount_minor=5,
        remaining_minor=5,
        currency="USD",
        priority=1,
        effective_at=WHOLE,
        expires_at=AT,
        meter_codes=None,
        status="active",
        created_at=WHOLE,
    )
    item = LedgerRepository("ledger").grant_item(grant)["Put"]["Item"]
    # THEN every stored time is the same width, so text order is time order
    assert item["gsi1sk"]["S"] == "2026-03-04T05:06:07.000000Z#cg_1"
    assert item["effective_at"]["S"] == "2026-03-04T05:06:07.000000Z"
    assert item["expires_at"]["S"] == "2026-03-04T05:06:07.000008Z"
    # AND the answer of the grant speaks ISO 8601 with the offset
    assert grant.to_dict()["effective_at"] == "2026-03-04T05:06:07+00:00"


def test_a_billing_window_names_its_start_in_the_fixed_width_format() -> None:
    window = Window("sub_1", 0, "usage", WHOLE, AT, AT)
    assert window.window_id == "sub_1:2026-03-04T05:06:07.000000Z:usage"
    assert window.to_dict()["due_at"] == "2026-03-04T05:06:07.000008Z"


def test_stripe_records_keep_whole_seconds() -> None:
    from neruba.timefmt import ts_seconds

    assert ts_seconds(AT) == "2026-03-04T05:06:07Z"


def test_a_naive_time_is_refused_when_stored() -> None:
    from neruba.timefmt import ts

    with pytest.raises(ValueError, match="timezone"):
        ts(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("label", "full"),
    [
        ("2026-12-01T10:11", "2026-12-01T10:11:00Z"),  # an outcome counter's minute
        ("2026-12-01T09", "2026-12-01T09:00:00Z"),  # a usage cell's hour
        ("2026-12-01", "2026-12-01T00:00:00Z"),  # a day
        ("0999-01-01T00", "0999-01-01T00:00:00Z"),  # years padded to four digits stay readable
    ],
)
def test_a_stored_label_is_answered_as_its_first_instant_in_utc_with_z(label: str, full: str) -> None:
    from neruba.domain.ingest import hour_start
    from neruba.timefmt import answer_times, label_start, label_z

    assert label_z(label) == full
    assert label_start(label) == datetime.fromisoformat(full)
    # a label in a time field of an answer is completed; the same text elsewhere, or a name, is not
    answer = {"hour": label, "bucket": "total", "data": [{"start": label}], "metadata": {"day": label}}
    assert answer_times(answer) == {
        "hour": full,
        "bucket": "total",
        "data": [{"start": full}],
        "metadata": {"day": label},
    }
    if len(label) == 13:
        assert hour_start(label) == label_start(label)


@pytest.mark.parametrize("text", ["2026-12-01T9", "2026-12-01T10:11:12", "2026-12-01T10Z", "total", ""])
def test_only_a_day_hour_or_minute_is_a_label(text: str) -> None:
    from neruba.timefmt import label_start

    with pytest.raises(ValueError, match="label"):
        label_start(text)


def test_the_clients_own_values_are_never_taken_for_times() -> None:
    # a usage line grouped by a property named "day", a charge filtering on one, metadata and properties
    from neruba.timefmt import answer_times

    day = {"day": "2026-12-01", "start": "2026-12-01T10:00:00+02:00"}
    answer = {"group": day, "filters": [{"values": day}], "metadata": day, "properties": day, "day": "x"}
    assert answer_times(answer) == answer
