"""template.yaml is sound offline: cfn-lint, the SAM transform, DLQs, batch failures, least privilege,
handlers that import, routes that match the code, one sample event per handler."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import ROOT, _of_type, _tool

pytestmark = pytest.mark.infra


def test_cfn_lint_passes() -> None:
    result = subprocess.run(
        [_tool("cfn-lint"), str(ROOT / "template.yaml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_transform_produces_every_kind_of_resource(transformed: dict[str, Any]) -> None:
    kinds = {r["Type"] for r in transformed["Resources"].values()}
    assert {
        "AWS::ApiGateway::RestApi",
        "AWS::Lambda::Function",
        "AWS::Lambda::EventSourceMapping",
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::Events::Rule",
        "AWS::CloudWatch::Alarm",
    } <= kinds


def test_every_queue_has_a_dead_letter_queue_with_an_alarm(transformed: dict[str, Any]) -> None:
    queues = _of_type(transformed, "AWS::SQS::Queue")
    dlqs = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in queues.values()
        if "RedrivePolicy" in q.get("Properties", {})
    }
    # a function's on-failure destination is the dead-letter queue of its asynchronous (scheduled) runs
    dlqs |= {
        c["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
        for c in _of_type(transformed, "AWS::Lambda::EventInvokeConfig").values()
    }
    sources = {name for name, q in queues.items() if "RedrivePolicy" in q.get("Properties", {})}
    assert sources, "no queue declares a RedrivePolicy"
    assert set(queues) == sources | dlqs, f"queues without a DLQ: {set(queues) - sources - dlqs}"
    for name in sources:
        count = int(queues[name]["Properties"]["RedrivePolicy"]["maxReceiveCount"])
        assert 1 <= count <= 1000
    alarmed = {
        a["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for a in _of_type(transformed, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
    }
    assert dlqs <= alarmed, f"DLQs without a depth alarm: {dlqs - alarmed}"


def test_every_sqs_mapping_reports_batch_item_failures(transformed: dict[str, Any]) -> None:
    mappings = _of_type(transformed, "AWS::Lambda::EventSourceMapping")
    assert mappings
    for name, mapping in mappings.items():
        assert "ReportBatchItemFailures" in mapping["Properties"].get("FunctionResponseTypes", []), name


def test_iam_is_least_privilege(transformed: dict[str, Any]) -> None:
    for name, role in _of_type(transformed, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                assert all(a != "*" and not a.endswith(":*") for a in actions), f"{name}: {actions}"
                resources = (
                    statement["Resource"]
                    if isinstance(statement["Resource"], list)
                    else [statement["Resource"]]
                )
                assert "*" not in resources, f"{name} grants {actions} on every resource"


def test_every_handler_resolves_to_a_callable(source: dict[str, Any]) -> None:
    functions = _of_type(source, "AWS::Serverless::Function")
    assert functions
    for name, function in functions.items():
        props = function["Properties"]
        module_name, attribute = props["Handler"].rsplit(".", 1)
        path = ROOT / props["CodeUri"] / f"{module_name}.py"
        spec = importlib.util.spec_from_file_location(f"handler_{name}", path)
        assert spec and spec.loader, f"{name}: no module at {path}"
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert callable(getattr(module, attribute, None)), f"{name}: {props['Handler']} is not callable"


def test_api_routes_in_template_match_the_code(source: dict[str, Any]) -> None:
    # GIVEN the Api events of each function, and the routes its resolver serves
    for name, function in _of_type(source, "AWS::Serverless::Function").items():
        props = function["Properties"]
        declared = {
            (e["Properties"]["Method"].upper(), e["Properties"]["Path"])
            for e in props.get("Events", {}).values()
            if e["Type"] == "Api"
        }
        if not declared:
            continue
        spec = importlib.util.spec_from_file_location(f"routes_{name}", ROOT / props["CodeUri"] / "app.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        app = module.app
        served = {(r.method.upper(), r.openapi_path) for r in app._static_routes + app._dynamic_routes}
        # THEN every declared route is served by that function, and every served route is declared somewhere
        # (ANY: every method reaches the function, which serves some and answers 405 to the others)
        served_paths = {path for _, path in served}
        unserved = {
            (m, p) for m, p in declared if (m, p) not in served and not (m == "ANY" and p in served_paths)
        }
        assert not unserved, f"{name} is routed {unserved} but does not serve them"
        if (
            name != "SystemApiFunction"
        ):  # it serves every route for the OpenAPI document; only its own are routed
            unrouted = {(m, p) for m, p in served if (m, p) not in declared and ("ANY", p) not in declared}
            assert not unrouted, f"{name} serves {unrouted}, which API Gateway never routes to it"


def test_one_sample_event_per_handler(source: dict[str, Any]) -> None:
    for function in _of_type(source, "AWS::Serverless::Function").values():
        folder = Path(function["Properties"]["CodeUri"]).name
        samples = list((ROOT / "events").glob(f"{folder}*.json"))
        assert samples, f"no events/{folder}*.json"
        for sample in samples:
            json.loads(sample.read_text())


def test_parameters_cover_stage_docs_endpoint_and_stripe_secret(source: dict[str, Any]) -> None:
    params = source["Parameters"]
    assert {"Stage", "DocsEnabled", "EndpointType", "StripeSecretName"} <= set(params)
    assert params["EndpointType"]["AllowedValues"] == ["REGIONAL", "PRIVATE"]
    assert params["DocsEnabled"]["Default"] == "false"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
