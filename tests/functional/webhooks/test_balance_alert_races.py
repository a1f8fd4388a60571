"""Balance alerts under racing writes (docs/limits.md, "Balance alerts", "Racing writes"): two changes of
one customer's usable credit that both read the balance before either commits fire each crossing exactly
once, whatever the order they commit in. Each race is injected deterministically: the second write runs
whole between the first one's reads and its commit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from neruba.logic.ledger.credits import create_grant
from tests.functional.billing.conftest import START, World, ledger, real, subscribe_real  # noqa: F401
from tests.functional.billing.helpers import day, schedule, work
from tests.functional.webhooks.sources import outbox
from tests.support.api import api_event, call


def _balance_alerts() -> list[tuple[str, int, int]]:
    found = [e["data"] for e in outbox("alert.triggered") if e["data"]["kind"] == "balance"]
    return [(a["alert"], a["previous_balance_minor"], a["balance_minor"]) for a in found]


def _levels(levels: list[int]) -> None:
    from functions.admin_api.app import lambda_handler

    status, body, _ = call(lambda_handler, api_event(
        "PUT", "/v1/customers/acme/limits", body={"balance_alerts_minor": levels}, scopes="admin",
        path_parameters={"customer_id": "acme"},
    ))  # fmt: skip
    assert status == 200, body


def _grant(key: str, amount: int, priority: int) -> Any:
    grant, _ = create_grant(
        ledger(), customer_id="acme", kind="purchased", amount_minor=amount, currency="USD",
        idempotency_key=key, actor="test", priority=priority, at=START - day(1),
    )  # fmt: skip
    return grant


def _void(grant_id: str, key: str) -> None:
    from functions.ledger_api.app import lambda_handler

    status, body, _ = call(lambda_handler, api_event(
        "POST", f"/admin/credit-grants/{grant_id}/void", body={"reason": "closing"}, scopes="admin",
        path_parameters={"grant_id": grant_id}, headers={"Idempotency-Key": key},
    ))  # fmt: skip
    assert status == 200, body


def _admin_grant(amount: int, key: str) -> None:
    from functions.ledger_api.app import lambda_handler

    status, body, _ = call(lambda_handler, api_event(
        "POST", "/admin/customers/acme/credit-grants", scopes="admin",
        body={
            "kind": "promotional", "amount_minor": amount, "reason": "goodwill", "priority": 5,
            "effective_at": (START - day(1)).isoformat(),
        },
        path_parameters={"customer_id": "acme"}, headers={"Idempotency-Key": key},
    ))  # fmt: skip
    assert status == 201, body


def _before_credit_use(monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], None]) -> None:
    """Run ``meanwhile`` whole when billing's first transaction applying credit is about to commit:
    after billing read the balance, before it commits."""
    from neruba.logic.billing import worker as module

    real_commit = module.commit
    done: list[bool] = []

    def interleaved(unit: Any) -> Any:
        if not done and "remaining_minor - :a" in str(list(unit)):
            done.append(True)
            meanwhile()
        return real_commit(unit)

    monkeypatch.setattr(module, "commit", interleaved)


def test_billing_and_a_void_racing_fire_the_crossing_once(real: World, monkeypatch: Any) -> None:  # noqa: F811
    # GIVEN a level at 10.00 and 21.00 of credit: 15.00 billing uses first, 6.00 an operator voids
    _levels([1000])
    _grant("a", 1500, 0)
    kept = _grant("b", 600, 1)
    subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 8)
    now = START + day(1, 1)
    schedule(real, now)
    # WHEN the void commits after billing read the balance (21.00) and before billing commits (8.00 used)
    _before_credit_use(monkeypatch, lambda: _void(kept.grant_id, "void-1"))
    work(real, now, monkeypatch)
    # THEN the balance went 21.00 -> 15.00 -> 7.00: the level was crossed once, by billing's write
    assert ledger().grant(kept.grant_id).status == "voided"  # type: ignore[union-attr]
    assert _balance_alerts() == [("balance:1000", 1500, 700)]


def test_two_voids_racing_fire_the_crossing_once(real: World, monkeypatch: Any) -> None:  # noqa: F811
    from neruba.dal.ledger import LedgerRepository

    # GIVEN a level at 10.00 and two grants of 6.00 (12.00)
    _levels([1000])
    first, second = _grant("a", 600, 0), _grant("b", 600, 1)
    # WHEN the second void commits between the first one's reads and its commit
    real_post = LedgerRepository.post
    done: list[bool] = []

    def post(self: LedgerRepository, posting: Any, extra: Any = ()) -> Any:
        if not done and posting.source_id == first.grant_id:
            done.append(True)
            _void(second.grant_id, "void-2")
        return real_post(self, posting, extra)

    monkeypatch.setattr(LedgerRepository, "post", post)
    _void(first.grant_id, "void-1")
    # THEN both are voided and 10.00 was crossed once (12.00 -> 6.00 by the void that committed first)
    assert [ledger().grant(g.grant_id).status for g in (first, second)] == ["voided", "voided"]  # type: ignore[union-attr]
    assert _balance_alerts() == [("balance:1000", 1200, 600)]


def test_a_grant_committing_during_billing_counts_in_its_decision(real: World, monkeypatch: Any) -> None:  # noqa: F811
    # GIVEN a level at 10.00 and 15.00 of credit
    _levels([1000])
    _grant("a", 1500, 0)
    subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 8)
    now = START + day(1, 1)
    schedule(real, now)
    # WHEN an operator grants 10.00 after billing read the balance and before it commits (8.00 used)
    _before_credit_use(monkeypatch, lambda: _admin_grant(1000, "g-1"))
    work(real, now, monkeypatch)
    # THEN the balance went 15.00 -> 25.00 -> 17.00: never under 10.00, so nothing fired
    assert _balance_alerts() == []


def _catalog_requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record each DynamoDB request touching the catalog table (by operation)."""
    from neruba.dal.clients import client
    from neruba.settings import get_settings

    table = get_settings().catalog_table
    dynamodb = client("dynamodb")
    real_call = dynamodb._make_api_call
    seen: list[str] = []

    def recording(operation: str, params: dict[str, Any]) -> Any:
        if table in str(params):
            seen.append(operation)
        return real_call(operation, params)

    monkeypatch.setattr(dynamodb, "_make_api_call", recording)
    return seen


def _metrics(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float]]:
    from neruba.observability import metrics

    recorded: list[tuple[str, float]] = []
    real_add = metrics.add_metric

    def add_metric(name: str, unit: Any, value: float, **kwargs: Any) -> None:
        recorded.append((name, value))
        real_add(name=name, unit=unit, value=value, **kwargs)

    monkeypatch.setattr(metrics, "add_metric", add_metric)
    return recorded


def test_balance_alerts_count_in_the_usage_alert_metric(real: World, monkeypatch: Any) -> None:  # noqa: F811
    # GIVEN levels at 10.00 and 4.00 and 15.00 of credit
    _levels([1000, 400])
    _grant("a", 1500, 0)
    kept = _grant("b", 300, 1)
    recorded = _metrics(monkeypatch)
    # WHEN billing applies 12.00 (15.00 of a, 18.00 in all -> 6.00: crosses 10.00 only)
    subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 12)
    now = START + day(1, 1)
    schedule(real, now)
    work(real, now, monkeypatch)
    assert [name for name, _ in recorded].count("UsageAlertTriggered") == 1
    # AND an operator voids 3.00 (6.00 -> 3.00: crosses 4.00), sent twice
    _void(kept.grant_id, "void-1")
    _void(kept.grant_id, "void-1")
    # THEN each alert counted once in UsageAlertTriggered, as usage and spend alerts are
    assert sorted(_balance_alerts()) == [("balance:1000", 1800, 600), ("balance:400", 600, 300)]
    assert [v for name, v in recorded if name == "UsageAlertTriggered"] == [1, 1]


def test_a_customer_without_levels_pays_no_read_or_write_for_the_version(
    real: World,  # noqa: F811
    monkeypatch: Any,
) -> None:
    # GIVEN a customer without balance alert levels, with credit
    kept = _grant("b", 600, 1)
    seen = _catalog_requests(monkeypatch)
    # WHEN an operator grants credit and voids a grant
    _admin_grant(1000, "g-1")
    assert seen == ["GetItem"]  # the customer, read as before
    seen.clear()
    _void(kept.grant_id, "void-1")
    # THEN the void read the customer's settings once and nothing wrote its catalog item
    assert seen == ["GetItem"]
    # AND with levels, a grant moves the version in its own transaction (no read more)
    _levels([1000])
    seen.clear()
    _admin_grant(1000, "g-2")
    assert seen == ["GetItem", "TransactWriteItems"]


def test_a_grant_committing_during_an_expiry_counts_in_its_decision(
    real: World,  # noqa: F811
    monkeypatch: Any,
) -> None:
    from datetime import UTC, datetime, timedelta

    from functions.credit_expiry.app import lambda_handler as expiry
    from neruba.dal.ledger import LedgerRepository
    from tests.support.api import fixture
    from tests.support.lambda_context import FakeContext

    # GIVEN a level at 10.00 and 12.00 of credit, 6.00 of which expired an hour ago
    _levels([1000])
    create_grant(
        ledger(), customer_id="acme", kind="promotional", amount_minor=600, currency="USD",
        idempotency_key="x", actor="test", at=START, expires_at=datetime.now(UTC) - timedelta(hours=1),
    )  # fmt: skip
    _grant("k", 600, 1)
    # WHEN an operator grants 10.00 after the expiry read the balance and before it commits
    real_post = LedgerRepository.post
    done: list[bool] = []

    def post(self: LedgerRepository, posting: Any, extra: Any = ()) -> Any:
        if not done and posting.source == "expiry":
            done.append(True)
            _admin_grant(1000, "g-1")
        return real_post(self, posting, extra)

    monkeypatch.setattr(LedgerRepository, "post", post)
    report = expiry(fixture("credit_expiry.json"), FakeContext())
    # THEN the expiry decided from 22.00 (-> 16.00): nothing fired, and the grant expired in this run
    assert len(report["expired"]) == 1 and report["conflicts"] == []
    assert _balance_alerts() == []


def _balance_version() -> Any:
    import boto3

    from neruba.settings import get_settings

    item = boto3.client("dynamodb").get_item(
        TableName=get_settings().catalog_table, Key={"pk": {"S": "CUS#acme"}, "sk": {"S": "#"}}
    )["Item"]
    return int(item["bv"]["N"]) if "bv" in item else None


@pytest.mark.parametrize("levels", [[1000], []])
def test_an_auto_top_up_moves_the_version_of_a_watched_customer_only(
    real: World,  # noqa: F811
    monkeypatch: Any,
    levels: list[int],
) -> None:
    import boto3

    from neruba.dal.top_ups import TopUpRepository
    from neruba.domain.credits import AutoTopUpRule

    # GIVEN 15.00 of credit, a top-up of 50.00 under 10.00, and a balance level at 10.00 (or none)
    if levels:
        _levels(levels)
    rules = TopUpRepository(ledger().table_name)
    boto3.client("dynamodb").transact_write_items(
        TransactItems=[rules.rule_item(AutoTopUpRule("acme", "USD", 1000, 5000))]
    )
    _grant("a", 1500, 0)
    subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 8)
    now = START + day(1, 1)
    schedule(real, now)
    # WHEN billing applies 8.00 (15.00 -> 7.00) and the top-up's grant follows
    work(real, now, monkeypatch)
    assert [i["kind"] for i in real.invoices("acme")].count("topup") == 1
    # THEN with the level, both writes moved the version (and 10.00 fired once); without, nothing did
    if levels:
        assert _balance_version() == 2
        assert _balance_alerts() == [("balance:1000", 1500, 700)]
    else:
        assert _balance_version() is None
