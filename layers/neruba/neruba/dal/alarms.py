"""This stack's CloudWatch alarms in alarm (``/admin/alarms``), found by the name prefix CloudFormation
gives them (``STACK-LogicalId-SUFFIX``; template.yaml sets ``NERUBA_ALARM_PREFIX`` to ``STACK-``).

Example:
    >>> [a.name for a in alarms_in_alarm("neruba-dev-")]  # doctest: +SKIP
    ['neruba-dev-IngestDLQDepthAlarm-1X2Y3Z']
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from neruba.dal.clients import client


@dataclass(frozen=True, slots=True)
class FiringAlarm:
    name: str
    description: str | None
    reason: str | None
    since: datetime | None
    metric: str | None


def alarms_in_alarm(prefix: str) -> list[FiringAlarm]:
    """The metric and composite alarms named ``prefix...`` whose state is ALARM, by name."""
    found: list[FiringAlarm] = []
    pages = (
        client("cloudwatch")
        .get_paginator("describe_alarms")
        .paginate(AlarmNamePrefix=prefix, StateValue="ALARM", AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    )
    for page in pages:
        for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
            if alarm.get("StateValue") == "ALARM":  # checked again: an emulator may apply one filter only
                found.append(_alarm(alarm))
    return sorted(found, key=lambda a: a.name)


def _alarm(item: dict[str, Any]) -> FiringAlarm:
    namespace, metric = item.get("Namespace"), item.get("MetricName")
    return FiringAlarm(
        name=item["AlarmName"],
        description=item.get("AlarmDescription"),
        reason=item.get("StateReason"),
        since=item.get("StateUpdatedTimestamp"),
        metric=f"{namespace} {metric}" if namespace and metric else None,
    )
