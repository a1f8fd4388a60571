"""An amend whose corrected copy does not fit the customer's hard cap. Found over HTTP: the original is
voided (its usage leaves the count and the limit counter), the answer shows the copy ``accepted``, and
the copy is then refused ``over_limit`` when it is counted, so the event's usage is lost from the bill.
The expected rule (not built yet): such an amend is refused up front with a 409 and changes nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.functional.ingest.conftest import ev, event_of
from tests.functional.ingest.test_event_voids import AT, admin, body, total

__all__ = ["admin"]


@pytest.mark.xfail(strict=True, reason="an amend past the hard cap voids the original and loses the copy")
def test_an_amend_past_the_hard_cap_is_refused_and_changes_nothing(
    send: Any, process: Any, read: Any, admin: Any
) -> None:
    from neruba.logic.idempotency import Actor
    from neruba.logic.limits.settings import put_limits
    from neruba.models.limits import UsageLimitsIn

    cap = UsageLimitsIn.model_validate({"meters": [{"meter_code": "tokens", "hard_cap": "100"}]})
    put_limits("acme", cap, None, Actor())
    send(
        ev("a", code="tokens", timestamp=AT, properties={"tokens": 40, "model": "large"}),
        ev("b", code="tokens", timestamp=AT, properties={"tokens": 40, "model": "large"}),
    )
    process()
    assert total("tokens") == (2, Decimal(80))
    status, answer = admin("amend", "a", body(properties={"tokens": 90, "model": "large"}))
    assert status == 409, answer
    assert total("tokens") == (2, Decimal(80))
    assert event_of(read, "a")["status"] == "accepted"
