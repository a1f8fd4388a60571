"""Data migrations: idempotent, recorded once, skipped when recorded; the Custom::Migrations resource
answers CloudFormation SUCCESS or FAILED (with the reason) at the ResponseURL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import boto3
import pytest

from neruba.dal.ops import OpsRepository
from neruba.migrations import Migration, MigrationFailedError, discover, migrate, run_migrations
from neruba.settings import get_settings
from tests.support.lambda_context import FakeContext


def _catalog_items() -> dict[str, dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=get_settings().catalog_table)["Items"]
    return {i["pk"]["S"] + "|" + i["sk"]["S"]: i for i in items}


def _strip_index_keys(pk: str) -> None:
    boto3.client("dynamodb").update_item(
        TableName=get_settings().catalog_table,
        Key={"pk": {"S": pk}, "sk": {"S": "#"}},
        UpdateExpression="REMOVE kind, list_key",
    )


@pytest.fixture
def cfn_endpoint() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP server standing in for the presigned ResponseURL; collects every PUT body."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(
                {
                    "body": json.loads(self.rfile.read(length)),
                    "content_type": self.headers.get("Content-Type"),
                }
            )
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/presigned?sig=x", received
    finally:
        server.shutdown()
        server.server_close()


def _cfn_event(url: str, request_type: str = "Update", version: str = "layer:7") -> dict[str, Any]:
    from tests.support.api import fixture

    event = fixture("migrations.json")
    event.update({"RequestType": request_type, "ResponseURL": url})
    event["ResourceProperties"]["Version"] = version
    return event


def test_migrations_backfill_the_catalog_index_keys_and_a_second_run_changes_nothing(catalog: Any) -> None:
    # GIVEN a customer and a meter that lost their index keys, and a plan version (never indexed)
    from neruba.dal.plans import PlansRepository

    PlansRepository(get_settings().catalog_table).publish(
        "basic", {"name": "Basic", "currency": "USD", "interval": "month", "charges": []}
    )
    _strip_index_keys("CUS#acme")
    _strip_index_keys("MTR#tokens")
    before = _catalog_items()
    assert "kind" not in before["CUS#acme|#"]
    # WHEN the migrations run
    first = migrate()
    # THEN both are applied, the items are listable again with the values the repositories write
    assert [(o.number, o.status) for o in first] == [(m.number, "applied") for m in discover()]
    assert first[0].result["updated"] == 2
    after = _catalog_items()
    assert after["CUS#acme|#"]["kind"] == {"S": "customer"} and after["CUS#acme|#"]["list_key"] == {
        "S": "acme"
    }
    assert after["MTR#tokens|#"]["list_key"] == {"S": "tokens"}
    assert "list_key" not in after["PLN#basic|V#000001"]
    assert {k: v for k, v in after.items() if k not in ("CUS#acme|#", "MTR#tokens|#")} == {
        k: v for k, v in before.items() if k not in ("CUS#acme|#", "MTR#tokens|#")
    }
    # WHEN they run again
    second = migrate()
    # THEN every one is skipped and no item changed
    assert [o.status for o in second] == ["skipped"] * len(discover())
    assert _catalog_items() == after
    # AND each migration is idempotent on its own too (run again despite its record)
    ctx_result = discover()[0].apply(_ctx())
    assert ctx_result["updated"] == 0 and _catalog_items() == after
    assert discover()[1].apply(_ctx())["written"] is False


def _ctx() -> Any:
    from datetime import UTC, datetime

    from neruba.migrations import MigrationContext

    return MigrationContext(settings=get_settings(), now=datetime.now(UTC))


def test_a_recorded_migration_is_skipped_and_a_failure_stops_the_run(aws: dict[str, str]) -> None:
    # GIVEN three migrations: 1 already recorded, 2 fails, 3 would succeed
    calls: list[int] = []

    def ok(n: int) -> Migration:
        return Migration(n, f"m{n}", "", "c", lambda ctx: calls.append(n) or {"n": n})

    def fails(ctx: Any) -> dict[str, Any]:
        raise ValueError("bad row CUS#x")

    ops = OpsRepository(get_settings().ops_table)
    ops.record_migration(1, "m1", "c", "2026-01-01T00:00:00+00:00", {})
    migrations = [ok(1), Migration(2, "broken", "", "c", fails), ok(3)]
    # WHEN they run
    with pytest.raises(MigrationFailedError) as failure:
        run_migrations(ops, _ctx(), migrations)
    # THEN 1 is skipped, 2 fails with a readable reason, 3 never runs, and nothing new is recorded
    assert str(failure.value) == "migration 0002 broken failed: ValueError: bad row CUS#x"
    assert calls == []
    assert set(ops.applied_migrations([1, 2, 3])) == {1}


def test_the_custom_resource_answers_success_then_failed_with_the_reason(
    aws: dict[str, str], cfn_endpoint: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received = cfn_endpoint
    from functions.migrations.app import lambda_handler

    # WHEN CloudFormation creates the resource
    lambda_handler(_cfn_event(url, "Create", version="layer:1"), FakeContext())
    # THEN it answers SUCCESS naming what it applied, with an empty content type (presigned URL)
    answer = received[-1]
    assert answer["content_type"] == ""
    assert answer["body"]["Status"] == "SUCCESS"
    assert answer["body"]["Data"]["Applied"] == ",".join(f"{m.number:04d}_{m.name}" for m in discover())
    assert answer["body"]["RequestId"] == _cfn_event(url)["RequestId"]
    # GIVEN a new deploy whose new migration fails
    import neruba.migrations as package

    real = package.discover()

    def broken(ctx: Any) -> dict[str, Any]:
        raise RuntimeError("cannot backfill invoice numbers")

    number = real[-1].number + 1
    monkeypatch.setattr(
        package, "discover", lambda: [*real, Migration(number, "invoice_numbers", "", "c", broken)]
    )
    # WHEN CloudFormation updates the resource
    lambda_handler(_cfn_event(url, "Update", version="layer:2"), FakeContext())
    # THEN it answers FAILED with the migration and its cause as the reason (the deploy fails)
    body = received[-1]["body"]
    assert body["Status"] == "FAILED"
    assert body["Reason"].startswith(
        f"migration {number:04d} invoice_numbers failed: RuntimeError: cannot backfill invoice numbers"
    )
    assert body["PhysicalResourceId"] == "neruba-migrations"
    # AND the rollback to the previous version succeeds without running the broken migration again
    lambda_handler(_cfn_event(url, "Update", version="layer:1"), FakeContext())
    assert received[-1]["body"]["Status"] == "SUCCESS"
    assert "already migrated" in received[-1]["body"]["Reason"]
    # AND deleting the stack answers SUCCESS without touching data
    lambda_handler(_cfn_event(url, "Delete", version="layer:2"), FakeContext())
    assert received[-1]["body"]["Status"] == "SUCCESS"
    assert len(received) == 4


def test_neruba_migrate_lists_and_runs(aws: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    from neruba_tools.cli import main

    assert main(["migrate", "--list"]) == 0
    assert "0001 catalog_index_keys" in capsys.readouterr().out
    assert main(["migrate"]) == 0
    count = len(discover())
    assert f"{count} applied, 0 already recorded" in capsys.readouterr().out
    assert main(["migrate"]) == 0
    assert f"0 applied, {count} already recorded" in capsys.readouterr().out
    assert main(["migrate", "--list"]) == 0
    out = capsys.readouterr().out
    assert "pending" not in out and "Schema version: 2" in out
