"""An amend whose corrected copy does not fit the customer's hard cap. Found over HTTP: the original is
voided (its usage leaves the count and the limit counter), the answer shows the copy ``accepted``, and
the copy is then refused ``over_limit`` when it is counted, so the event's usage is lost from the bill.
The rule: such an amend is refused up front with 409 ``amend_over_limit`` and changes nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.functional.ingest.conftest import ev, event_of
from tests.functional.ingest.test_event_voids import AT, admin, body, total

__all__ = ["admin"]


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


def test_an_amend_landing_exactly_on_the_cap_is_accepted(
    send: Any, process: Any, read: Any, admin: Any
) -> None:
    """The original's own usage is left out of the count: 40 + 40 amended to 40 + 60 lands on 100."""
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
    status, answer = admin("amend", "a", body(properties={"tokens": 60, "model": "large"}))
    assert status == 200, answer
    assert event_of(read, "a")["status"] == "voided"
    status, answer = admin("amend", "b", body(properties={"tokens": 41, "model": "large"}), key="k2")
    assert status == 409 and answer["error"]["code"] == "amend_over_limit", answer
