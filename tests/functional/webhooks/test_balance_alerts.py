"""Balance alerts (docs/limits.md, "Balance alerts"): alert.triggered kind balance when billing's credit
application takes the usable credit under a level, in the invoice's transaction: once per crossing under
a crash and a rerun, armed again when a grant lifts the balance back above the level."""

from __future__ import annotations

from typing import Any

from neruba.logic.ledger.credits import create_grant
from tests.functional.billing.conftest import START, World, ledger, real, subscribe_real  # noqa: F401
from tests.functional.billing.helpers import day, schedule, work, worker
from tests.functional.webhooks.sources import crash_with_outbox, outbox
from tests.support.api import api_event, call
from tests.support.queues import receive_batch, run_batch


def _grant(key: str, amount: int, priority: int) -> Any:
    grant, _ = create_grant(
        ledger(), customer_id="acme", kind="purchased", amount_minor=amount, currency="USD",
        idempotency_key=key, actor="test", priority=priority, at=START - day(1),
    )  # fmt: skip
    return grant


def _balance_alerts() -> list[tuple[str, int, int]]:
    found = [e["data"] for e in outbox("alert.triggered") if e["data"]["kind"] == "balance"]
    return [(a["alert"], a["previous_balance_minor"], a["balance_minor"]) for a in found]


def test_balance_alerts_fire_once_per_crossing_and_rearm(real: World, monkeypatch: Any) -> None:  # noqa: F811
    from functions.admin_api.app import lambda_handler

    # GIVEN balance alerts at 10.00 and 4.00, and 15.00 of credit
    event = api_event(
        "PUT", "/v1/customers/acme/limits", body={"balance_alerts_minor": [1000, 400]}, scopes="admin",
        path_parameters={"customer_id": "acme"},
    )  # fmt: skip
    status, body, _ = call(lambda_handler, event)
    assert status == 200, body
    assert body["balance_alerts_minor"] == [400, 1000]
    _grant("a", 500, 0)
    _grant("b", 1000, 1)
    # WHEN billing applies 12.00 of usage, its first attempt crashing at the commit
    subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 12)
    now = START + day(1, 1)
    schedule(real, now)
    with crash_with_outbox(monkeypatch) as crashes:
        run_batch(worker(real, now, monkeypatch), real.billing_queue, receive_batch(real.billing_queue, 10))
    assert crashes and _balance_alerts() == []
    work(real, now, monkeypatch)
    # THEN both levels fired once (15.00 -> 3.00), and a rerun of the window fires nothing again
    assert sorted(_balance_alerts()) == [("balance:1000", 1500, 300), ("balance:400", 1500, 300)]
    schedule(real, now, trigger="manual")
    work(real, now, monkeypatch)
    assert len(_balance_alerts()) == 2
    # WHEN a grant lifts the balance to 13.00 (over 10.00: armed again) and 5.00 more is applied
    _grant("c", 1000, 2)
    real.usage("acme", START + day(1, 4), 5)
    later = START + day(2, 1)
    schedule(real, later)
    work(real, later, monkeypatch)
    # THEN 10.00 fires again (13.00 -> 8.00); 4.00 was not crossed
    assert sorted(_balance_alerts())[0] == ("balance:1000", 1300, 800)
    assert len(_balance_alerts()) == 3


def test_a_void_and_an_expiry_that_lower_the_balance_fire_once(real: World) -> None:  # noqa: F811
    from datetime import UTC, datetime, timedelta

    from functions.admin_api.app import lambda_handler as admin
    from functions.credit_expiry.app import lambda_handler as expiry
    from functions.ledger_api.app import lambda_handler as ledger_api
    from tests.support.api import fixture
    from tests.support.lambda_context import FakeContext

    # GIVEN a balance alert at 10.00, and 20.00 of credit: 8.00 that expired an hour ago and 12.00
    status, body, _ = call(admin, api_event(
        "PUT", "/v1/customers/acme/limits", body={"balance_alerts_minor": [1000]}, scopes="admin",
        path_parameters={"customer_id": "acme"},
    ))  # fmt: skip
    assert status == 200, body
    expiring, _ = create_grant(
        ledger(), customer_id="acme", kind="promotional", amount_minor=800, currency="USD",
        idempotency_key="x", actor="test", at=START, expires_at=datetime.now(UTC) - timedelta(hours=1),
    )  # fmt: skip
    kept = _grant("k", 1200, 1)
    # WHEN the expiry job runs (twice): 20.00 -> 12.00, still over the level
    expiry(fixture("credit_expiry.json"), FakeContext())
    expiry(fixture("credit_expiry.json"), FakeContext())
    assert ledger().grant(expiring.grant_id).status == "expired"  # type: ignore[union-attr]
    assert _balance_alerts() == []
    # AND an operator voids the 12.00 (sent twice with one Idempotency-Key)
    for _ in range(2):
        status, body, _ = call(ledger_api, api_event(
            "POST", f"/admin/credit-grants/{kept.grant_id}/void", body={"reason": "closing"}, scopes="admin",
            path_parameters={"grant_id": kept.grant_id}, headers={"Idempotency-Key": "void-1"},
        ))  # fmt: skip
        assert status == 200, body
    # THEN the level fired once: 12.00 -> 0
    assert _balance_alerts() == [("balance:1000", 1200, 0)]


def test_an_expiry_crossing_a_level_fires(real: World) -> None:  # noqa: F811
    from datetime import UTC, datetime, timedelta

    from functions.admin_api.app import lambda_handler as admin
    from functions.credit_expiry.app import lambda_handler as expiry
    from tests.support.api import fixture
    from tests.support.lambda_context import FakeContext

    status, body, _ = call(admin, api_event(
        "PUT", "/v1/customers/acme/limits", body={"balance_alerts_minor": [1000]}, scopes="admin",
        path_parameters={"customer_id": "acme"},
    ))  # fmt: skip
    assert status == 200, body
    create_grant(
        ledger(), customer_id="acme", kind="promotional", amount_minor=800, currency="USD",
        idempotency_key="x", actor="test", at=START, expires_at=datetime.now(UTC) - timedelta(hours=1),
    )  # fmt: skip
    _grant("k", 500, 1)
    expiry(fixture("credit_expiry.json"), FakeContext())
    expiry(fixture("credit_expiry.json"), FakeContext())
    assert _balance_alerts() == [("balance:1000", 1300, 500)]
