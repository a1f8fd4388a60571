"""What balance alerts cost the writes that close a grant's remainder (docs/limits.md, "Balance alerts",
"Cost"): a void or an expiry reads a customer's levels only when its ``balance_alert`` flag is set
(``dal.features``), the expiry job reads the flags of a page of grants in one batch, and until the
backfill that flags the levels set before the flags has run, every customer's levels are read."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from neruba.logic.ledger.credits import create_grant
from tests.functional.billing.conftest import START, World, ledger, real  # noqa: F401
from tests.functional.billing.helpers import day
from tests.functional.webhooks.sources import outbox
from tests.support.api import api_event, call

READS = ("GetItem", "Query", "BatchGetItem", "Scan")


@contextmanager
def _requests() -> Iterator[list[tuple[str, str, str]]]:
    """Every DynamoDB request sent meanwhile, as (operation, table, the key prefix of each item asked)."""
    from neruba.dal.clients import client

    sent: list[tuple[str, str, str]] = []

    def note(model: Any, params: dict[str, Any], **_: Any) -> None:
        def prefix(key: dict[str, Any]) -> str:
            return str(key.get("pk", {}).get("S", "")).split("#")[0]

        if "RequestItems" in params and model.name == "BatchGetItem":
            for table, request in params["RequestItems"].items():
                keys = sorted({prefix(k) for k in request["Keys"]})
                sent.append((model.name, table.removeprefix("test-"), ",".join(keys)))
        else:
            table = str(params.get("TableName", "")).removeprefix("test-")
            sent.append((model.name, table, prefix(params.get("Key") or {})))

    events = client("dynamodb").meta.events
    events.register("provide-client-params.dynamodb", note, unique_id="balance-reads")
    try:
        yield sent
    finally:
        events.unregister("provide-client-params.dynamodb", unique_id="balance-reads")


def _levels(customer_id: str, levels: list[int]) -> None:
    from functions.admin_api.app import lambda_handler

    status, body, _ = call(lambda_handler, api_event(
        "PUT", f"/v1/customers/{customer_id}/limits", body={"balance_alerts_minor": levels}, scopes="admin",
        path_parameters={"customer_id": customer_id},
    ))  # fmt: skip
    assert status == 200, body


def _grant(customer_id: str, key: str, amount: int, expired: bool = False) -> Any:
    expires = datetime.now(UTC) - timedelta(hours=1) if expired else None
    grant, _ = create_grant(
        ledger(), customer_id=customer_id, kind="purchased", amount_minor=amount, currency="USD",
        idempotency_key=key, actor="test", priority=1, at=START - day(1), expires_at=expires,
    )  # fmt: skip
    return grant


def _void(grant_id: str, key: str) -> None:
    from functions.ledger_api.app import lambda_handler

    status, body, _ = call(lambda_handler, api_event(
        "POST", f"/admin/credit-grants/{grant_id}/void", body={"reason": "closing"}, scopes="admin",
        path_parameters={"grant_id": grant_id}, headers={"Idempotency-Key": key},
    ))  # fmt: skip
    assert status == 200, body


def _expire() -> dict[str, Any]:
    from functions.credit_expiry.app import lambda_handler as expiry
    from tests.support.api import fixture
    from tests.support.lambda_context import FakeContext

    return dict(expiry(fixture("credit_expiry.json"), FakeContext()))


def _backfill() -> int:
    from neruba import bootstrap
    from neruba.logic.limits.balance import backfill_flags

    return backfill_flags(bootstrap.billing_records(), bootstrap.catalog(), datetime.now(UTC))


def _balance_alerts() -> list[tuple[str, str, int, int]]:
    found = [e["data"] for e in outbox("alert.triggered") if e["data"]["kind"] == "balance"]
    return sorted(
        (a["customer_id"], a["alert"], a["previous_balance_minor"], a["balance_minor"]) for a in found
    )


def _limit_reads(sent: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The reads a write made for balance alerts: the customer's catalog item (its levels), its flags."""
    return [r for r in sent if r[0] in READS and (r[1] == "CatalogTable" or "FEAT" in r[2] or "MARK" in r[2])]


def test_an_expiry_run_reads_one_batch_of_flags_and_only_the_levels_of_flagged_customers(
    real: World,  # noqa: F811
) -> None:
    # GIVEN the flags trusted (the backfill ran), acme with a level at 10.00, and three customers whose
    # expired grants take their credit from 15.00 to 5.00: acme, globex and one not in the catalog
    assert _backfill() == 0
    _levels("acme", [1000])
    for customer_id in ("acme", "globex", "initech"):
        _grant(customer_id, "kept", 500)
        _grant(customer_id, "old", 1000, expired=True)
    # WHEN the expiry job runs
    with _requests() as sent:
        report = _expire()
    # THEN it read the three customers' flags in one batch and the levels of acme only (and, the first
    # time in the process, the backfill's marker)
    assert len(report["expired"]) == 3
    assert _limit_reads(sent) == [
        ("GetItem", "BillingTable", "MARK"),
        ("BatchGetItem", "BillingTable", "FEAT"),
        ("GetItem", "CatalogTable", "CUS"),
    ]
    # AND acme's level fired once (15.00 -> 5.00); the others have none
    assert _balance_alerts() == [("acme", "balance:1000", 1500, 500)]


def test_a_void_reads_the_levels_only_of_a_flagged_customer(real: World) -> None:  # noqa: F811
    # GIVEN the flags trusted, acme with a level at 10.00 and globex without, each with 15.00 of credit
    _backfill()
    _levels("acme", [1000])
    voided = {c: _grant(c, "b", 1000) for c in ("acme", "globex")}
    for customer_id in ("acme", "globex"):
        _grant(customer_id, "a", 500)
    # WHEN an operator voids globex's 10.00
    with _requests() as sent:
        _void(voided["globex"].grant_id, "void-g")
    # THEN the void read globex's flags (one small item; the marker the first time in the process), never
    # its catalog item, and wrote nothing there
    assert _limit_reads(sent) == [
        ("GetItem", "BillingTable", "MARK"),
        ("BatchGetItem", "BillingTable", "FEAT"),
    ]
    assert not [r for r in sent if r[1] == "CatalogTable"]
    # AND a void of acme's reads its flags, then its levels, and fires (15.00 -> 5.00)
    with _requests() as sent:
        _void(voided["acme"].grant_id, "void-a")
    assert _limit_reads(sent) == [
        ("BatchGetItem", "BillingTable", "FEAT"),
        ("GetItem", "CatalogTable", "CUS"),
    ]
    assert _balance_alerts() == [("acme", "balance:1000", 1500, 500)]


def test_levels_set_before_the_flags_are_read_until_the_backfill_flags_them(
    real: World,  # noqa: F811
) -> None:
    import boto3

    from neruba.settings import get_settings

    # GIVEN acme's level at 10.00 stored before the flags existed (its flag item absent), and 10.00 of
    # usable credit, plus 10.00 that expired an hour ago
    _levels("acme", [1000])
    billing = get_settings().billing_table
    boto3.client("dynamodb").delete_item(TableName=billing, Key={"pk": {"S": "FEAT#acme"}, "sk": {"S": "#"}})
    _grant("acme", "a", 500)
    _grant("acme", "old", 1000, expired=True)
    first = _grant("acme", "b", 500)
    # WHEN a void runs before the backfill: the flags are not trusted, so acme's levels are read and the
    # level fires (10.00 -> 5.00)
    with _requests() as sent:
        _void(first.grant_id, "void-1")
    assert ("GetItem", "CatalogTable", "CUS") in _limit_reads(sent)
    assert _balance_alerts() == [("acme", "balance:1000", 1000, 500)]
    # AND the backfill flags acme (and only acme) and sets its marker
    assert _backfill() == 1
    # THEN the expiry reads acme's levels through its flag and fires (just before the grant expired:
    # 15.00 -> 5.00)
    report = _expire()
    assert len(report["expired"]) == 1
    assert _balance_alerts() == [("acme", "balance:1000", 1000, 500), ("acme", "balance:1000", 1500, 500)]
