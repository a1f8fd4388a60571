"""template.yaml keeps what a deployed stack must keep and says when it is unwell: retained state, TTL,
log retention, alarms on errors, throttles and 5xx, access logs, on-failure destinations, settings that
reach the resources they name."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import ROOT, _of_type, _tool

pytestmark = pytest.mark.infra

STATEFUL = ("AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::Logs::LogGroup")


def _functions(source: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return _of_type(source, "AWS::Serverless::Function")


def test_every_stateful_resource_survives_stack_deletion_and_replacement(source: dict[str, Any]) -> None:
    stateful = {n: r for n, r in source["Resources"].items() if r["Type"] in STATEFUL}
    assert len(_of_type(source, "AWS::DynamoDB::Table")) == 6
    for name, resource in stateful.items():
        assert resource.get("DeletionPolicy") == "Retain", f"{name} is deleted with the stack"
        assert resource.get("UpdateReplacePolicy") == "Retain", f"{name} is deleted when replaced"


def test_the_regions_api_gateway_logging_role_outlives_the_stack(source: dict[str, Any]) -> None:
    # API Gateway keeps one logging role per account and region, set by the last stack that set it: if
    # that stack's deletion deleted the role, every other stack's access log would stop being written
    role = source["Resources"]["ApiGatewayCloudWatchRole"]
    assert source["Resources"]["ApiGatewayAccount"]["Properties"]["CloudWatchRoleArn"] == {
        "Fn::GetAtt": ["ApiGatewayCloudWatchRole", "Arn"]
    }
    assert role.get("DeletionPolicy") == "Retain" and role.get("UpdateReplacePolicy") == "Retain"


def test_usage_table_expires_journal_items_by_their_ttl_attribute(source: dict[str, Any]) -> None:
    from neruba.dal import usage

    spec = source["Resources"]["UsageTable"]["Properties"]["TimeToLiveSpecification"]
    assert spec == {"AttributeName": "ttl", "Enabled": True}
    # the attribute the template names is the one the journal writes
    assert '"ttl"' in Path(usage.__file__).read_text()


def test_every_function_logs_to_its_own_group_kept_log_retention_days(source: dict[str, Any]) -> None:
    groups = _of_type(source, "AWS::Logs::LogGroup")
    used = set()
    for name, function in _functions(source).items():
        group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert group in groups, f"{name} logs to {group}, which the template does not declare"
        assert groups[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        used.add(group)
    assert len(used) == len(_functions(source)), "two functions share a log group"
    api = source["Resources"]["Api"]["Properties"]
    access = api["AccessLogSetting"]["DestinationArn"]["Fn::GetAtt"][0]
    assert groups[access]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_api_access_log_records_failed_authentications(source: dict[str, Any]) -> None:
    fmt = source["Resources"]["Api"]["Properties"]["AccessLogSetting"]["Format"]
    record = json.loads(fmt)  # one JSON object per request
    for field in (
        "$context.status",
        "$context.authorizer.error",
        "$context.identity.sourceIp",
        "$context.path",
    ):
        assert field in record.values(), field


def test_errors_and_throttles_of_every_function_raise_an_alarm(source: dict[str, Any]) -> None:
    watched: dict[str, set[str]] = {"Errors": set(), "Throttles": set()}
    for alarm in _of_type(source, "AWS::CloudWatch::Alarm").values():
        metrics = alarm["Properties"].get("Metrics") or []
        assert len([m for m in metrics if "MetricStat" in m]) <= 10, "CloudWatch allows 10 metrics per alarm"
        for query in metrics:
            metric = query.get("MetricStat", {}).get("Metric", {})
            if metric.get("Namespace") == "AWS/Lambda" and metric["MetricName"] in watched:
                watched[metric["MetricName"]].add(metric["Dimensions"][0]["Value"]["Ref"])
        expressions = [m["Expression"] for m in metrics if "Expression" in m]
        ids = {m["Id"] for m in metrics if "MetricStat" in m}
        for expression in expressions:  # the alarm sums every metric it lists
            assert set(expression.split("+")) == ids
    for metric, functions in watched.items():
        assert functions == set(_functions(source)), (
            f"{metric}: no alarm for {set(_functions(source)) - functions}"
        )


def test_api_5xx_raise_an_alarm_on_this_stacks_api(source: dict[str, Any]) -> None:
    alarms = [
        a["Properties"]
        for a in _of_type(source, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "5XXError"
    ]
    assert len(alarms) == 1
    dimensions = {d["Name"]: d["Value"] for d in alarms[0]["Dimensions"]}
    assert dimensions["ApiName"] == source["Resources"]["Api"]["Properties"]["Name"]
    assert dimensions["Stage"] == {"Ref": "Stage"}


def test_scheduled_functions_have_an_on_failure_destination(source: dict[str, Any]) -> None:
    for name, function in _functions(source).items():
        events = function["Properties"].get("Events") or {}
        if not any(e["Type"] == "Schedule" for e in events.values()):
            continue
        failure = function["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
        assert failure["Type"] == "SQS", name
        queue = failure["Destination"]["Fn::GetAtt"][0]
        assert source["Resources"][queue]["Type"] == "AWS::SQS::Queue", name


@pytest.mark.parametrize("ttl", ["0", "300"])
def test_authorizer_cache_ttl_parameter_reaches_api_gateway(ttl: str) -> None:
    result = subprocess.run(
        [_tool("python"), str(ROOT / "infra" / "sam_transform.py"), str(ROOT / "template.yaml"),
         f"AuthorizerCacheTtl={ttl}"],
        capture_output=True, text=True, check=False, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    apis = _of_type(json.loads(result.stdout), "AWS::ApiGateway::RestApi")
    (api,) = apis.values()
    authorizer = api["Properties"]["Body"]["securityDefinitions"]["ApiKeyAuthorizer"]
    # the translator copies the parameter value (a string, as CloudFormation passes parameters)
    assert int(authorizer["x-amazon-apigateway-authorizer"]["authorizerResultTtlInSeconds"]) == int(ttl)


def test_dashboard_name_is_unique_per_stack_and_region(source: dict[str, Any]) -> None:
    name = source["Resources"]["OperationsDashboard"]["Properties"]["DashboardName"]
    assert "${AWS::StackName}" in name["Fn::Sub"] and "${AWS::Region}" in name["Fn::Sub"]


def test_every_parameter_reaches_a_resource_and_grace_is_a_setting(source: dict[str, Any]) -> None:
    text = json.dumps(source["Resources"]) + json.dumps(source.get("Globals", {}))
    text += json.dumps(source.get("Conditions", {}))
    for parameter in source["Parameters"]:
        assert f'"Ref": "{parameter}"' in text or f"${{{parameter}}}" in text, f"{parameter} is never used"
    env = source["Globals"]["Function"]["Environment"]["Variables"]
    assert env["NERUBA_BILLING_GRACE_SECONDS"] == {"Ref": "BillingGraceSeconds"}


def test_outputs_name_every_table_and_queue(source: dict[str, Any]) -> None:
    outputs = {json.dumps(o["Value"]) for o in source["Outputs"].values()}
    for kind in ("AWS::DynamoDB::Table", "AWS::SQS::Queue"):
        for name in _of_type(source, kind):
            assert json.dumps({"Ref": name}) in outputs, f"no output names {name}"


def test_every_skipped_scanner_check_says_why(source: dict[str, Any]) -> None:
    skipped = 0
    for name, resource in source["Resources"].items():
        for skip in (resource.get("Metadata") or {}).get("checkov", {}).get("skip", []):
            assert skip["id"].startswith("CKV_"), name
            assert len(skip.get("comment", "")) >= 30, f"{name} skips {skip['id']} without a reason"
            skipped += 1
    assert skipped, "the scanner's skips are expected in the template, next to what they excuse"


def test_the_local_stripe_settings_never_reach_a_deploy(source: dict[str, Any]) -> None:
    from neruba_tools.local.stripe_local import API_BASE_VARIABLE, LOCAL_API_KEY

    # the address override and the local key are set by the local stack only: a deployed function talks
    # to api.stripe.com with the key of its SSM parameter
    text = (ROOT / "template.yaml").read_text()
    assert API_BASE_VARIABLE not in text and "sk_test" not in text and "whsec_" not in text
    assert LOCAL_API_KEY not in (ROOT / "samconfig.toml").read_text()
    variables = source["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["NERUBA_STRIPE_SECRET_NAME"] == {"Ref": "StripeSecretName"}
    for name, function in _functions(source).items():
        own = (function["Properties"].get("Environment") or {}).get("Variables") or {}
        assert API_BASE_VARIABLE not in own, name


def test_an_ingest_batch_holds_its_events_longer_than_it_runs_and_less_than_a_redelivery_takes(
    source: dict[str, Any],
) -> None:
    # GIVEN the ingest worker's Timeout, the ingest queue's visibility timeout, and how long a batch holds
    # the events it wrote (another batch adopts them only after that: docs/architecture.md)
    from neruba.logic.ingest.worker import HOLD

    timeout = int(_functions(source)["IngestWorkerFunction"]["Properties"]["Timeout"])
    visibility = int(source["Resources"]["IngestQueue"]["Properties"]["VisibilityTimeout"])
    # THEN a live attempt can never be adopted from, and a killed one's redelivery adopts at once
    assert timeout < HOLD.total_seconds() < visibility
