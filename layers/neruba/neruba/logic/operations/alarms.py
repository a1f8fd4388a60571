"""Alarms in alarm through the API: this stack's CloudWatch alarms whose state is ALARM (one list page);
none when no alarm prefix is configured (the local stack has no alarms). Besides them, ``PendingFoldLag``,
read from the stored watermarks whatever CloudWatch holds: a pending shard whose oldest unfolded window
started more than ``FOLD_LAG_LIMIT`` ago (the sweep stopped folding, docs/operations.md "Folding pending
usage")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from neruba import bootstrap
from neruba.dal.alarms import alarms_in_alarm
from neruba.timefmt import ts_seconds

# the sweep runs hourly by default and folds windows closed 13 minutes before it: a healthy fold is never
# this far behind (template.yaml's PendingFoldLagAlarm uses the same threshold)
FOLD_LAG_LIMIT = timedelta(hours=3)


def _clock() -> datetime:
    return datetime.now(UTC)


def list_alarms(prefix: str | None) -> dict[str, Any]:
    """Every alarm of the stack in ALARM, by name, then the fold lag's when it is behind."""
    data = [
        {
            "object": "alarm",
            "name": alarm.name,
            "state": "ALARM",
            "description": alarm.description,
            "reason": alarm.reason,
            "metric": alarm.metric,
            "since": ts_seconds(alarm.since) if alarm.since else None,
        }
        for alarm in (alarms_in_alarm(prefix) if prefix else [])
    ]
    lagging = fold_lag_alarm(_clock())
    return {"object": "list", "data": data + lagging, "has_more": False, "next_cursor": None}


def fold_lag_alarm(now: datetime) -> list[dict[str, Any]]:
    """The ``PendingFoldLag`` alarm when a pending shard's oldest unfolded window is older than
    ``FOLD_LAG_LIMIT`` (none otherwise)."""
    lag = bootstrap.usage().pending.lag(now)
    behind = {shard: age for shard, age in sorted(lag.items()) if age > FOLD_LAG_LIMIT.total_seconds()}
    if not behind:
        return []
    oldest = max(behind.values())
    shards = ", ".join(f"shard {shard} {age // 60} min" for shard, age in behind.items())
    return [
        {
            "object": "alarm",
            "name": "PendingFoldLag",
            "state": "ALARM",
            "description": "Pending usage is not being folded: the usage sweep has not run or its fold fails "
            "(docs/operations.md, Folding pending usage).",
            "reason": f"oldest unfolded window per pending shard: {shards}",
            "metric": "Neruba PendingFoldLagSeconds",
            "since": ts_seconds(now - timedelta(seconds=oldest) + FOLD_LAG_LIMIT),
        }
    ]
