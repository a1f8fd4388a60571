"""Operational records in the ops table: sweep reports and applied data migrations.

Items:
- ``SWEEP#{id}`` / ``#``: one sweep report (JSON text in ``report``);
- ``SWEEPS`` / ``{started_at}#{id}``: the list entry of that report (summary only), newest first by sk;
  at most one sweep an hour on the schedule plus operator runs, so one partition is plenty;
- ``MIG#{number:04d}`` / ``#``: a data migration that ran to completion (name, checksum, result);
- ``SWEEPCLAIM#{kind}#{key}`` / ``#``: when a sweep last re-sent work for ``key`` (``at``, ``count``), so
  a second sweep inside the cool-down does not send it again (see :meth:`OpsRepository.claim_resend`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from neruba import jsonutil
from neruba.dal.clients import client
from neruba.dal.dynamo import batch_get, from_item, is_condition_failure, put_if_absent, query_items, to_item
from neruba.dal.transaction import Transaction
from neruba.timefmt import iso, ts

SWEEP_LIST_PK = "SWEEPS"


@dataclass(frozen=True)
class MigrationRecord:
    """A data migration that ran to completion: its file's name and checksum then, when (``iso`` text)
    and what it reported."""

    number: int
    name: str
    checksum: str
    applied_at: str
    result: dict[str, Any]


def _migration(item: dict[str, Any]) -> MigrationRecord:
    return MigrationRecord(
        number=int(str(item["pk"])[4:]),
        name=str(item.get("name", "")),
        checksum=str(item.get("checksum", "")),
        applied_at=str(item.get("applied_at", "")),
        result=json.loads(item["result"]) if item.get("result") else {},
    )


@dataclass(frozen=True, slots=True)
class SweepReport:
    """A stored sweep report (or its list entry, a summary): its id, when it started (stored text), its
    status, and ``document``, the report (or summary) as stored, which the admin API answers."""

    id: str
    started_at: str
    status: str | None
    document: dict[str, Any]


def _sweep_report(doc: dict[str, Any]) -> SweepReport:
    return SweepReport(str(doc["id"]), str(doc.get("started_at")), doc.get("status"), doc)


class InvalidSweepCursorError(ValueError):
    """A ``starting_after`` that is not a sweep id this API returned."""


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "object", "trigger", "actor", "started_at", "finished_at", "window", "found", "repaired")
    summary = {k: report.get(k) for k in keys}
    summary["status"] = report.get("status")
    summary["checks"] = [c["name"] for c in report.get("checks", [])]
    return summary


class OpsRepository:
    """Sweep reports and migration records in the ops table."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    # ------------------------------------------------------------------------------------ sweeps
    def put_sweep_report(self, report: dict[str, Any]) -> None:
        """Store a report and its list entry together (``report`` has ``id`` and ``started_at``)."""
        sweep_id, started_at = str(report["id"]), str(report["started_at"])
        body = jsonutil.dumps(report)
        summary = jsonutil.dumps(_summary(report))
        Transaction(
            [
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": to_item({"pk": f"SWEEP#{sweep_id}", "sk": "#", "report": body}),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": to_item(
                            {"pk": SWEEP_LIST_PK, "sk": f"{started_at}#{sweep_id}", "summary": summary}
                        ),
                    }
                },
            ]
        ).commit()

    def get_sweep_report(self, sweep_id: str) -> SweepReport | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"SWEEP#{sweep_id}"}, "sk": {"S": "#"}},
            ConsistentRead=True,
        )
        if "Item" not in response:
            return None
        return _sweep_report(jsonutil.loads(from_item(response["Item"])["report"]))

    def list_sweeps(self, limit: int, starting_after: str | None = None) -> tuple[list[SweepReport], bool]:
        """Sweep summaries, newest first; ``starting_after`` is the id of the last one already seen."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": SWEEP_LIST_PK}},
            "ScanIndexForward": False,
            "Limit": limit + 1,
        }
        if starting_after:
            last = self.get_sweep_report(starting_after)
            if last is None:
                raise InvalidSweepCursorError(starting_after)
            sk = f"{last.started_at}#{starting_after}"
            request["ExclusiveStartKey"] = {"pk": {"S": SWEEP_LIST_PK}, "sk": {"S": sk}}
        # one more than the page tells whether there is more; no page is read after it is found
        items = [
            _sweep_report(jsonutil.loads(item["summary"])) for item in islice(query_items(request), limit + 1)
        ]
        return items[:limit], len(items) > limit

    # -------------------------------------------------------------------------------- migrations
    def applied_migrations(self, numbers: list[int]) -> dict[int, MigrationRecord]:
        """The records of those of ``numbers`` that were applied (BatchGetItem, 100 keys a call)."""
        found: dict[int, MigrationRecord] = {}
        keys = [{"pk": {"S": f"MIG#{n:04d}"}, "sk": {"S": "#"}} for n in sorted(set(numbers))]
        for record in map(_migration, batch_get(self.table_name, keys)):
            found[record.number] = record
        return found

    def migration(self, number: int) -> MigrationRecord | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"MIG#{number:04d}"}, "sk": {"S": "#"}},
            ConsistentRead=True,
        )
        return _migration(from_item(response["Item"])) if "Item" in response else None

    def record_migration(
        self, number: int, name: str, checksum: str, applied_at: str, result: dict[str, Any]
    ) -> bool:
        """Record a completed migration; False when another run recorded it first (kept as it was)."""
        item = {
            "pk": f"MIG#{number:04d}",
            "sk": "#",
            "name": name,
            "checksum": checksum,
            "applied_at": applied_at,
            "result": json.dumps(result, default=str, sort_keys=True),
        }
        return put_if_absent(self.table_name, item)

    def deploy_version_migrated(self, version: str) -> bool:
        """True when every migration of deploy ``version`` (the shared layer's version) succeeded."""
        response = client("dynamodb").get_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"MIG#VERSION#{version}"}, "sk": {"S": "#"}},
            ConsistentRead=True,
        )
        return "Item" in response

    def record_deploy_version(self, version: str) -> None:
        from datetime import UTC, datetime

        item = {"pk": f"MIG#VERSION#{version}", "sk": "#", "at": iso(datetime.now(UTC))}
        client("dynamodb").put_item(TableName=self.table_name, Item=to_item(item))

    # ------------------------------------------------------------------------------ sweep claims
    def claim_resend(self, kind: str, key: str, now: datetime, cooldown: timedelta) -> bool:
        """Record that a sweep re-sends ``key`` now; False when one did within ``cooldown`` (skip it).

        One conditional UpdateItem: two sweeps at once cannot both claim the same key.

        Example:
            >>> OpsRepository("ops").claim_resend("stripe", "evt_1", now, COOLDOWN)  # doctest: +SKIP
            True
        """
        try:
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key={"pk": {"S": f"SWEEPCLAIM#{kind}#{key}"}, "sk": {"S": "#"}},
                UpdateExpression="SET #at = :now ADD #n :one",
                ConditionExpression="attribute_not_exists(pk) OR #at <= :since",
                ExpressionAttributeNames={"#at": "at", "#n": "count"},
                ExpressionAttributeValues=to_item({":now": ts(now), ":since": ts(now - cooldown), ":one": 1}),
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True
