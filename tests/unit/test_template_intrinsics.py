"""The template loader and the intrinsic-function evaluator the local stack builds everything from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from neruba_tools.local.intrinsics import Intrinsics, TemplateError, TemplateLoader, load_template
from neruba_tools.local.provision import local_template
from neruba_tools.local.template import Template, merge_globals

ROOT = Path(__file__).resolve().parents[2]


def _parse(text: str) -> Any:
    return yaml.load(text, Loader=TemplateLoader)  # noqa: S506 - a SafeLoader subclass


def _doc(**sections: Any) -> dict[str, Any]:
    return {"Resources": {}, **sections}


def test_the_real_template_parses_with_short_tags_in_long_form() -> None:
    # GIVEN template.yaml WHEN loaded
    document = load_template(ROOT / "template.yaml")
    # THEN short tags became their long form, and the version date stayed a string
    assert document["AWSTemplateFormatVersion"] == "2010-09-09"
    queue = document["Resources"]["IngestQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["IngestDLQ", "Arn"]}
    assert document["Conditions"]["IsPrivate"] == {"Fn::Equals": [{"Ref": "EndpointType"}, "PRIVATE"]}
    assert document["Conditions"]["HasAlarmTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }
    assert all("Type" in resource for resource in document["Resources"].values())


def test_scalar_sequence_and_mapping_forms_of_tags() -> None:
    # GIVEN each form of short tag WHEN parsed THEN each gives the long form CloudFormation defines
    parsed = _parse(
        """
        a: !GetAtt Queue.Arn
        b: !GetAtt [Queue, QueueName]
        c: !Sub ["${X}-y", {X: !Ref P}]
        d: !Base64 {"Fn::Sub": "z"}
        e: !Condition IsProd
        f: !GetAZs ""
        g: !Select [0, !Split [",", "a,b"]]
        """
    )
    assert parsed["a"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert parsed["b"] == {"Fn::GetAtt": ["Queue", "QueueName"]}
    assert parsed["c"] == {"Fn::Sub": ["${X}-y", {"X": {"Ref": "P"}}]}
    assert parsed["d"] == {"Fn::Base64": {"Fn::Sub": "z"}}
    assert parsed["e"] == {"Condition": "IsProd"}
    assert parsed["f"] == {"Fn::GetAZs": ""}
    assert parsed["g"] == {"Fn::Select": [0, {"Fn::Split": [",", "a,b"]}]}


def test_sub_replaces_parameters_pseudo_parameters_attributes_and_keeps_escapes() -> None:
    # GIVEN a parameter with a default overridden, and a resolver for resources
    document = _doc(Parameters={"Stage": {"Type": "String", "Default": "dev"}})
    document["Resources"]["Q"] = {"Type": "AWS::SQS::Queue"}
    seen: list[tuple[str, str | None]] = []

    def resolve(logical_id: str, attribute: str | None) -> str:
        seen.append((logical_id, attribute))
        return f"<{logical_id}.{attribute}>"

    intrinsics = Intrinsics(document, resolve, {"Stage": "prod"}, stack_name="st")
    # WHEN Sub strings are evaluated
    text = intrinsics.evaluate({"Fn::Sub": "${AWS::StackName}/${Stage}/${AWS::Region}/${Q.Arn}/${!Literal}"})
    listed = intrinsics.evaluate({"Fn::Sub": ["${A}-${Stage}", {"A": {"Ref": "Q"}}]})
    # THEN every kind of name is replaced, and ${!X} stays a literal ${X}
    assert text == "st/prod/us-east-1/<Q.Arn>/${Literal}"
    assert listed == "<Q.None>-prod"
    assert seen == [("Q", "Arn"), ("Q", None)]


def test_conditions_if_equals_not_and_no_value() -> None:
    # GIVEN conditions over parameters, and properties that use AWS::NoValue
    document = _doc(
        Parameters={"Env": {"Type": "String", "Default": "dev"}, "Topic": {"Type": "String", "Default": ""}},
        Conditions={
            "IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]},
            "HasTopic": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Topic"}, ""]}]},
            "Both": {"Fn::And": [{"Condition": "IsProd"}, {"Condition": "HasTopic"}]},
            "Either": {"Fn::Or": [{"Condition": "IsProd"}, {"Condition": "HasTopic"}]},
        },
    )
    value = {
        "Size": {"Fn::If": ["IsProd", 10, 1]},
        "Actions": {"Fn::If": ["HasTopic", [{"Ref": "Topic"}], {"Ref": "AWS::NoValue"}]},
        "List": ["a", {"Fn::If": ["IsProd", "b", {"Ref": "AWS::NoValue"}]}, "c"],
    }
    # WHEN evaluated for dev without a topic, and for prod with one
    dev = Intrinsics(document)
    prod = Intrinsics(document, parameters={"Env": "prod", "Topic": "arn:t"})
    # THEN the branches follow the conditions and NoValue removes the key or the list item
    assert dev.evaluate(value) == {"Size": 1, "List": ["a", "c"]}
    assert prod.evaluate(value) == {"Size": 10, "Actions": ["arn:t"], "List": ["a", "b", "c"]}
    assert (dev.condition("Both"), dev.condition("Either")) == (False, False)
    assert (prod.condition("Both"), prod.condition("Either")) == (True, True)


def test_join_select_split_find_in_map_base64_and_get_att() -> None:
    # GIVEN a mapping, a list parameter and a resolver
    document = _doc(
        Parameters={"Zones": {"Type": "CommaDelimitedList", "Default": "a, b"}},
        Mappings={"Sizes": {"dev": {"Memory": 256}}},
    )
    document["Resources"]["Fn"] = {"Type": "AWS::Serverless::Function"}
    intrinsics = Intrinsics(document, lambda logical_id, attr: f"arn:{logical_id}:{attr}")
    # WHEN evaluated THEN each function gives CloudFormation's answer
    assert intrinsics.evaluate({"Fn::Join": ["-", ["x", {"Ref": "AWS::AccountId"}, 3]]}) == "x-123456789012-3"
    assert intrinsics.evaluate({"Fn::Select": ["1", {"Ref": "Zones"}]}) == "b"
    assert intrinsics.evaluate({"Fn::Split": ["/", "a/b/c"]}) == ["a", "b", "c"]
    assert intrinsics.evaluate({"Fn::FindInMap": ["Sizes", "dev", "Memory"]}) == 256
    assert intrinsics.evaluate({"Fn::Base64": "hi"}) == "aGk="
    assert intrinsics.evaluate({"Fn::GetAtt": ["Fn", "Arn"]}) == "arn:Fn:Arn"
    assert intrinsics.evaluate({"Fn::GetAtt": "Fn.Arn"}) == "arn:Fn:Arn"
    assert intrinsics.evaluate({"Fn::Select": [0, {"Fn::GetAZs": ""}]}) == "us-east-1a"


def test_unknown_names_and_functions_are_errors_not_silence() -> None:
    intrinsics = Intrinsics(_doc(Conditions={"Loop": {"Condition": "Loop"}}))
    for value in ({"Ref": "Nope"}, {"Fn::If": ["Missing", 1, 2]}, {"Fn::Cidr": ["10.0.0.0/16", 1, 8]}):
        with pytest.raises(TemplateError):
            intrinsics.evaluate(value)
    with pytest.raises(TemplateError, match="itself"):
        intrinsics.condition("Loop")


def test_globals_merge_like_sam() -> None:
    # GIVEN Globals and a function's own properties WHEN merged
    merged = merge_globals(
        {"Timeout": 30, "Layers": ["L1"], "Environment": {"Variables": {"A": "1", "B": "2"}}},
        {"Timeout": 5, "Layers": ["L2"], "Environment": {"Variables": {"B": "own"}}},
    )
    # THEN scalars are the function's, lists add up, maps merge
    assert merged == {
        "Timeout": 5,
        "Layers": ["L1", "L2"],
        "Environment": {"Variables": {"A": "1", "B": "own"}},
    }


def test_the_real_template_evaluates_for_the_local_stack() -> None:
    # GIVEN template.yaml with the local parameters
    template = local_template(load_template(ROOT / "template.yaml"), "st", {"Stage": "local"})
    # WHEN its environment, API and events are listed
    env = template.function_environment("IngestApiFunction")
    api = template.evaluate(template.document["Resources"]["Api"]["Properties"])
    routes = {(r.method, r.path): r for r in template.api_routes()}
    # THEN names are the local ones and NoValue dropped the private-endpoint settings
    assert env["NERUBA_STAGE"] == "local"
    assert env["NERUBA_USAGE_TABLE"] == "st-UsageTable"
    assert env["NERUBA_INGEST_QUEUE_URL"].endswith("/123456789012/st-IngestQueue")
    assert env["NERUBA_AUTHORIZER_CACHE_TTL_SECONDS"] == "60"
    assert api["EndpointConfiguration"] == {"Type": "REGIONAL"}
    assert len(api["Auth"]["ResourcePolicy"]["CustomStatements"]) == 1
    assert routes[("GET", "/health")].authorizer is None
    assert routes[("POST", "/v1/events")].authorizer == "ApiKeyAuthorizer"
    assert template.authorizers("Api")["ApiKeyAuthorizer"].function == "AuthorizerFunction"
    assert ("IngestWorkerFunction", "IngestQueue", 100) in [
        (s.function, s.queue, s.batch_size) for s in template.sqs_sources()
    ]
    schedules = {s.function: s.expression for s in template.schedules()}
    assert schedules["SweeperFunction"] == "rate(1 hour)"
    assert schedules["CreditExpiryFunction"] == "rate(5 minutes)"
    assert template.gateway_responses()["MISSING_AUTHENTICATION_TOKEN"].status_code == 404


def test_resources_whose_condition_is_false_are_not_listed() -> None:
    document = _doc(
        Parameters={"Env": {"Type": "String", "Default": "dev"}},
        Conditions={"IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]}},
    )
    document["Resources"] = {
        "Always": {"Type": "AWS::SQS::Queue"},
        "ProdOnly": {"Type": "AWS::SQS::Queue", "Condition": "IsProd"},
    }
    assert list(Template(document).queues()) == ["Always"]
    assert list(Template(document, Intrinsics(document, parameters={"Env": "prod"})).queues()) == [
        "Always",
        "ProdOnly",
    ]
