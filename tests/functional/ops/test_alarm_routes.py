"""Alarms in alarm through the API (``GET /admin/alarms``): the stack's CloudWatch alarms (by the name
prefix the template sets) whose state is ALARM, nothing of another stack, none when no prefix is set."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from tests.support.api import api_event, call

PREFIX = "neruba-test-"


def _alarm(cloudwatch: Any, name: str, state: str) -> None:
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        AlarmDescription=f"{name} <b>described</b>",
        Namespace="AWS/SQS",
        MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": "IngestDLQ"}],
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason=f"{name} is {state}")


def _alarms(scopes: str = "admin") -> tuple[int, Any]:
    from functions.ops_api.app import lambda_handler

    status, body, _ = call(lambda_handler, api_event("GET", "/admin/alarms", scopes=scopes))
    return status, body


@pytest.fixture
def cloudwatch(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("NERUBA_ALARM_PREFIX", PREFIX)
    from neruba import bootstrap

    bootstrap.reset()
    return boto3.client("cloudwatch")


def test_only_this_stacks_alarms_in_alarm_are_listed(cloudwatch: Any) -> None:
    # GIVEN this stack's alarms in ALARM and OK, and another stack's alarm in ALARM
    _alarm(cloudwatch, PREFIX + "IngestDLQDepth-A1", "ALARM")
    _alarm(cloudwatch, PREFIX + "ApiErrors-B2", "OK")
    _alarm(cloudwatch, "other-stack-IngestDLQDepth-C3", "ALARM")
    # WHEN an admin lists the alarms in alarm
    status, body = _alarms()
    # THEN only this stack's alarm in ALARM is there, with its reason, metric and since when
    assert status == 200, body
    assert [a["name"] for a in body["data"]] == [PREFIX + "IngestDLQDepth-A1"]
    alarm = body["data"][0]
    assert alarm["object"] == "alarm" and alarm["state"] == "ALARM"
    assert alarm["reason"] == PREFIX + "IngestDLQDepth-A1 is ALARM"
    assert alarm["metric"] == "AWS/SQS ApproximateNumberOfMessagesVisible"
    assert alarm["since"].endswith("Z") and body["has_more"] is False


def test_no_prefix_set_lists_nothing(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an alarm in ALARM but no prefix configured (the local stack): nothing of anyone's is shown
    monkeypatch.delenv("NERUBA_ALARM_PREFIX", raising=False)
    from neruba import bootstrap

    bootstrap.reset()
    _alarm(boto3.client("cloudwatch"), PREFIX + "IngestDLQDepth-A1", "ALARM")
    status, body = _alarms()
    assert status == 200 and body["data"] == []


@pytest.mark.parametrize("scopes", ["read", "ingest", "read ingest"])
def test_a_key_without_the_admin_scope_is_refused(cloudwatch: Any, scopes: str) -> None:
    status, body = _alarms(scopes)
    assert status == 403 and body["error"]["code"] == "insufficient_scope"
