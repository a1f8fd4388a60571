"""Alarms in alarm through the API: this stack's CloudWatch alarms whose state is ALARM (one list page);
none when no alarm prefix is configured (the local stack has no alarms)."""

from __future__ import annotations

from typing import Any

from neruba.dal.alarms import alarms_in_alarm
from neruba.timefmt import ts_seconds


def list_alarms(prefix: str | None) -> dict[str, Any]:
    """Every alarm of the stack in ALARM, by name."""
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
    return {"object": "list", "data": data, "has_more": False, "next_cursor": None}
