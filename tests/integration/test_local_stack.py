"""The local stack's mechanics, on a small fixture template with its own tiny handlers (so they do not
depend on the product's handlers): routes, the authorizer, gateway responses, SQS pollers with partial
batch failures and dead-letter queues, schedules, ports; and provisioning of the real template.yaml."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib import request as urllib_request

import boto3
import pytest

from neruba_tools.local.pollers import failed_message_ids
from neruba_tools.local.provision import provision_template, redrive_policy
from neruba_tools.local.schedules import CronExpression, Schedule, ScheduleError, rate_seconds
from neruba_tools.local.stack import LocalStack, PortInUseError
from tests.support.stack import HTTP_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[2]
integration = pytest.mark.integration

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  OutDir: {Type: String}
  Greeting: {Type: String, Default: hello}
Globals:
  Function:
    Runtime: python3.11
    CodeUri: fns/
    Timeout: 5
    Environment:
      Variables:
        OUT_DIR: !Ref OutDir
        GREETING: !Sub "${Greeting}-${AWS::Region}"
Resources:
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: local
      Auth:
        DefaultAuthorizer: TokenAuth
        Authorizers:
          TokenAuth:
            FunctionArn: !GetAtt AuthFn.Arn
            Identity: {Header: X-Token, ReauthorizeEvery: 300}
  Unauthorized:
    Type: AWS::ApiGateway::GatewayResponse
    Properties:
      RestApiId: !Ref Api
      ResponseType: UNAUTHORIZED
      StatusCode: "401"
      ResponseTemplates:
        application/json: '{"code": "unauthorized", "request_id": "$context.requestId"}'
  Denied:
    Type: AWS::ApiGateway::GatewayResponse
    Properties:
      RestApiId: !Ref Api
      ResponseType: ACCESS_DENIED
      StatusCode: "403"
      ResponseTemplates:
        application/json: '{"code": "denied", "message": $context.error.messageString}'
  NoRoute:
    Type: AWS::ApiGateway::GatewayResponse
    Properties:
      RestApiId: !Ref Api
      ResponseType: MISSING_AUTHENTICATION_TOKEN
      StatusCode: "404"
      ResponseTemplates:
        application/json: '{"code": "no_route", "request_id": "$context.requestId"}'
  Default5xx:
    Type: AWS::ApiGateway::GatewayResponse
    Properties:
      RestApiId: !Ref Api
      ResponseType: DEFAULT_5XX
      ResponseTemplates:
        application/json: >-
          {"code": "gateway_error", "message": $context.error.messageString,
          "request_id": "$context.requestId"}
  AuthFn:
    Type: AWS::Serverless::Function
    Properties: {Handler: app.authorize}
  EchoFn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.echo
      Events:
        Item: {Type: Api, Properties: {RestApiId: !Ref Api, Path: "/items/{item_id}", Method: GET}}
        Special: {Type: Api, Properties: {RestApiId: !Ref Api, Path: /items/special, Method: GET}}
        Create: {Type: Api, Properties: {RestApiId: !Ref Api, Path: /items, Method: POST}}
        Open:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: /open, Method: ANY, Auth: {Authorizer: NONE}}
  CrashFn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.crash
      Events:
        Crash:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: /crash, Method: GET, Auth: {Authorizer: NONE}}
  BrokenFn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: missing.handler
      Events:
        Broken:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: /broken, Method: GET, Auth: {Authorizer: NONE}}
  WorkQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 30
      RedrivePolicy: {deadLetterTargetArn: !GetAtt WorkDLQ.Arn, maxReceiveCount: 3}
  WorkDLQ:
    Type: AWS::SQS::Queue
  PoisonQueue:
    Type: AWS::SQS::Queue
    Properties:
      RedrivePolicy: {deadLetterTargetArn: !GetAtt PoisonDLQ.Arn, maxReceiveCount: 2}
  PoisonDLQ:
    Type: AWS::SQS::Queue
  WorkerFn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.worker
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt WorkQueue.Arn
            BatchSize: 10
            MaximumBatchingWindowInSeconds: 1
            FunctionResponseTypes: [ReportBatchItemFailures]
  PoisonFn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.poison
      Events:
        Poison: {Type: SQS, Properties: {Queue: !GetAtt PoisonQueue.Arn, BatchSize: 1}}
  TickFn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.tick
      Events:
        Tick: {Type: Schedule, Properties: {Schedule: rate(1 day)}}
        Nightly: {Type: Schedule, Properties: {Schedule: "cron(0 3 * * ? *)"}}
"""

HANDLERS = r'''"""Tiny handlers for the local stack's tests: each logs what it saw to OUT_DIR/KIND.jsonl."""

import base64
import json
import os
from pathlib import Path


def _log(kind, payload):
    with open(Path(os.environ["OUT_DIR"]) / f"{kind}.jsonl", "a", encoding="utf-8") as out:
        out.write(json.dumps(payload) + "\n")


def _policy(effect, resource):
    statement = {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}
    return {"Version": "2012-10-17", "Statement": [statement]}


def authorize(event, context):
    token = event["authorizationToken"]
    _log("auth", token)
    api_wide = event["methodArn"].split("/")[0] + "/*"
    if token == "boom":
        raise RuntimeError("the key store is down")
    if token == "deny":
        return {"principalId": "user-2", "policyDocument": _policy("Deny", api_wide)}
    if token == "narrow":  # allows GET only; API Gateway re-checks the cached policy on every route
        get_only = api_wide.replace("/*", "/local/GET/*")
        return {"principalId": "user-3", "policyDocument": _policy("Allow", get_only)}
    if token == "allow":
        return {"principalId": "user-1", "policyDocument": _policy("Allow", api_wide),
                "context": {"tier": "gold", "quota": 7, "beta": True}}
    raise Exception("Unauthorized")


def echo(event, context):
    query = event["queryStringParameters"] or {}
    if query.get("binary"):
        return {"statusCode": 200, "headers": {"Content-Type": "application/octet-stream"},
                "body": base64.b64encode(b"\x00\xffbin").decode(), "isBase64Encoded": True}
    body = {"event": event, "greeting": os.environ["GREETING"], "function_name": context.function_name,
            "remaining_ms": context.get_remaining_time_in_millis()}
    return {"statusCode": 201 if event["httpMethod"] == "POST" else 200,
            "headers": {"Content-Type": "application/json", "X-Echo": "1"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]}, "body": json.dumps(body)}


def crash(event, context):
    raise ValueError("a bug in the handler")


def worker(event, context):
    _log("work", event["Records"])
    return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]
                                  if r["body"].startswith("fail")]}


def poison(event, context):
    _log("poison", [r["body"] for r in event["Records"]])
    raise RuntimeError("cannot process this batch")


def tick(event, context):
    _log("tick", event)
    return {"detail_type": event["detail-type"], "resources": event["resources"]}
'''


@dataclass
class Fixture:
    stack: LocalStack
    out: Path

    def log(self, kind: str) -> list[Any]:
        path = self.out / f"{kind}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def http(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.stack.api_port, timeout=HTTP_TIMEOUT_S)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def sqs(self) -> Any:
        return boto3.client("sqs", endpoint_url=self.stack.moto_url, region_name="us-east-1")


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    root = tmp_path_factory.mktemp("fixture-stack")
    (root / "fns").mkdir()
    (root / "fns" / "app.py").write_text(HANDLERS)
    (root / "template.yaml").write_text(TEMPLATE)
    out = root / "out"
    out.mkdir()
    stack = LocalStack(
        "template.yaml", root, parameters={"OutDir": str(out)}, stack_name="fx",
        poll_interval=0.05, retry_delay=0, schedules=False,
    )  # fmt: skip
    stack.start()
    try:
        yield Fixture(stack, out)
    finally:
        stack.stop()


# ------------------------------------------------------------------------------------ real template


@integration
def test_the_real_template_gets_every_table_and_queue_with_its_redrive_policy(
    local_stack: LocalStack,
) -> None:
    # GIVEN the stack started on template.yaml
    template = local_stack.template
    tables, queues = template.tables(), template.queues()
    assert len(tables) >= 6 and len(queues) >= 2  # the enumeration below is not vacuous
    dynamodb = boto3.client("dynamodb", endpoint_url=local_stack.moto_url, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=local_stack.moto_url, region_name="us-east-1")
    # WHEN moto is asked what exists
    existing = set(dynamodb.list_tables()["TableNames"])
    # THEN every declared table exists with its key schema and indexes
    for logical_id, props in tables.items():
        name = f"neruba-it-{logical_id}"
        assert name in existing
        table = dynamodb.describe_table(TableName=name)["Table"]
        assert table["KeySchema"] == props["KeySchema"]
        declared = {i["IndexName"] for i in props.get("GlobalSecondaryIndexes", [])}
        assert {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])} == declared
    # AND every queue exists; each RedrivePolicy names its dead-letter queue's real ARN
    redriven = 0
    for logical_id, props in queues.items():
        url = sqs.get_queue_url(QueueName=f"neruba-it-{logical_id}")["QueueUrl"]
        assert local_stack.queue_urls[logical_id] == url
        if "RedrivePolicy" in props:
            redriven += 1
            policy = redrive_policy(sqs, url)
            dlq = template.document["Resources"][logical_id]["Properties"]["RedrivePolicy"]
            dlq_url = sqs.get_queue_url(QueueName=f"neruba-it-{dlq['deadLetterTargetArn']['Fn::GetAtt'][0]}")
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url["QueueUrl"], AttributeNames=["QueueArn"])
            assert policy is not None
            assert policy["deadLetterTargetArn"] == dlq_arn["Attributes"]["QueueArn"]
            assert int(policy["maxReceiveCount"]) == int(props["RedrivePolicy"]["maxReceiveCount"])
    assert redriven >= 1
    # AND provisioning again (a restart) is harmless and gives the same URLs
    again = provision_template(template, endpoint_url=local_stack.moto_url)
    assert {k: again[k] for k in local_stack.queue_urls} == local_stack.queue_urls


# ------------------------------------------------------------------------------------------ gateway


@integration
def test_a_route_gets_the_rest_proxy_event_with_path_parameters_and_authorizer_context(fx: Fixture) -> None:
    # GIVEN a token the authorizer allows, with a context
    # WHEN a parameterised route is called with a repeated query parameter
    status, headers, body = fx.http("GET", "/items/a%20b?x=1&x=2&y=", {"X-Token": "allow", "X-Multi": "m"})
    # THEN the handler saw API Gateway's REST proxy event
    assert status == 200, body
    answer = json.loads(body)
    event = answer["event"]
    assert (event["resource"], event["path"], event["httpMethod"]) == (
        "/items/{item_id}",
        "/items/a%20b",
        "GET",
    )
    assert event["pathParameters"] == {"item_id": "a b"}
    assert event["queryStringParameters"] == {"x": "2", "y": ""}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": [""]}
    assert event["headers"]["X-Multi"] == "m" and event["multiValueHeaders"]["X-Multi"] == ["m"]
    assert event["body"] is None and event["isBase64Encoded"] is False and event["stageVariables"] is None
    context = event["requestContext"]
    assert context["path"] == "/items/a%20b" and context["stage"] == "local"
    assert context["resourcePath"] == "/items/{item_id}" and context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["authorizer"] == {"tier": "gold", "quota": "7", "beta": "true", "principalId": "user-1"}
    assert dict(headers)["x-amzn-RequestId"] == context["requestId"]
    # AND the function ran with its evaluated environment and a Lambda context
    assert answer["greeting"] == "hello-us-east-1"
    assert answer["function_name"] == "fx-EchoFn" and 0 < answer["remaining_ms"] <= 5000
    # AND headers and multiValueHeaders both reach the client
    assert ("X-Echo", "1") in headers
    assert [v for k, v in headers if k == "Set-Cookie"] == ["a=1", "b=2"]


@integration
def test_literal_segments_win_over_parameters_and_unknown_routes_get_the_template_404(fx: Fixture) -> None:
    status, _, body = fx.http("GET", "/items/special", {"X-Token": "allow"})
    assert status == 200 and json.loads(body)["event"]["resource"] == "/items/special"
    # WHEN no route matches (path or method) THEN MISSING_AUTHENTICATION_TOKEN answers with the template's 404
    for method, path in (("GET", "/nowhere"), ("DELETE", "/items/1")):
        status, headers, body = fx.http(method, path, {"X-Token": "allow"})
        assert status == 404
        assert json.loads(body) == {"code": "no_route", "request_id": dict(headers)["x-amzn-RequestId"]}


@integration
def test_the_authorizer_decides_401_403_500_with_the_template_bodies(fx: Fixture) -> None:
    # GIVEN no token, a token it rejects, a token it denies, a token that makes it crash
    missing = fx.http("GET", "/items/1")
    rejected = fx.http("GET", "/items/1", {"X-Token": "who-knows"})
    denied = fx.http("GET", "/items/1", {"X-Token": "deny"})
    crashed = fx.http("GET", "/items/1", {"X-Token": "boom"})
    # THEN 401 twice (the missing one never reaches the authorizer), 403, and 500
    for status, headers, body in (missing, rejected):
        assert status == 401
        assert json.loads(body) == {"code": "unauthorized", "request_id": dict(headers)["x-amzn-RequestId"]}
    assert "" not in fx.log("auth") and "who-knows" in fx.log("auth")
    assert denied[0] == 403
    assert json.loads(denied[2]) == {
        "code": "denied",
        "message": "User is not authorized to access this resource",
    }
    assert crashed[0] == 500
    assert json.loads(crashed[2])["code"] == "gateway_error"
    # AND a route with Authorizer: NONE never asks it, whatever the token
    asked = len(fx.log("auth"))
    assert fx.http("GET", "/open", {"X-Token": "deny"})[0] == 200
    assert len(fx.log("auth")) == asked


@integration
def test_authorizer_answers_are_cached_per_token_and_rechecked_per_route(fx: Fixture) -> None:
    # GIVEN a token whose policy allows GET only
    before = fx.log("auth").count("narrow")
    # WHEN it calls two GET routes and one POST route
    first, second = (
        fx.http("GET", "/items/1", {"X-Token": "narrow"}),
        fx.http("GET", "/items/2", {"X-Token": "narrow"}),
    )
    post = fx.http("POST", "/items", {"X-Token": "narrow"}, b"{}")
    # THEN the authorizer ran once (ReauthorizeEvery), and its cached policy denies the POST
    assert (first[0], second[0], post[0]) == (200, 200, 403)
    assert fx.log("auth").count("narrow") - before == 1


@integration
def test_a_handler_exception_is_a_502_with_the_default_5xx_body(fx: Fixture) -> None:
    status, headers, body = fx.http("GET", "/crash")
    assert status == 502
    assert json.loads(body) == {
        "code": "gateway_error",
        "message": "Internal server error",
        "request_id": dict(headers)["x-amzn-RequestId"],
    }


def _raw(fx: Fixture, request: bytes) -> tuple[int, dict[str, Any]]:
    """Send bytes as they are (no client fixing the framing); the status and JSON body of the answer."""
    with socket.create_connection(("127.0.0.1", fx.stack.api_port), timeout=HTTP_TIMEOUT_S) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@integration
@pytest.mark.parametrize("length", [":", "-1", "abc"])
def test_a_content_length_that_is_not_a_byte_count_is_a_400(fx: Fixture, length: str) -> None:
    # GIVEN a request whose Content-Length is not a number of bytes (found by the OpenAPI fuzzer)
    request = f"GET /items/1 HTTP/1.1\r\nHost: x\r\nX-Token: allow\r\nContent-Length: {length}\r\n\r\n"
    # WHEN it is sent as it is
    status, body = _raw(fx, request.encode())
    # THEN a 400 with the gateway's message, and the connection is closed (the read above ended)
    assert status == 400
    assert "Content-Length" in body["message"]


@integration
def test_a_body_shorter_than_its_content_length_is_a_400_not_a_hang(
    fx: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a request that declares 10 bytes and sends 3, then waits
    from neruba_tools.local import gateway

    monkeypatch.setattr(gateway, "BODY_TIMEOUT_S", 0.5)
    request = b"POST /items HTTP/1.1\r\nHost: x\r\nX-Token: allow\r\nContent-Length: 10\r\n\r\n{}}"
    # WHEN it is sent
    started = time.monotonic()
    status, body = _raw(fx, request)
    # THEN a 400 soon after the body timeout, never the client's own timeout
    assert status == 400 and "before its Content-Length of 10 bytes" in body["message"]
    assert time.monotonic() - started < 5


@integration
def test_a_handler_that_cannot_be_imported_is_named_and_answers_502(fx: Fixture) -> None:
    # GIVEN a function whose handler file does not exist
    # WHEN the stack preloads handlers, and the route is called
    problems = fx.stack.preload()
    status, _, body = fx.http("GET", "/broken")
    # THEN the problem names the function and the file; the client gets API Gateway's 502
    assert list(problems) == ["BrokenFn"]
    assert "missing.py" in str(problems["BrokenFn"]) and "does not exist" in str(problems["BrokenFn"])
    assert status == 502 and json.loads(body)["message"] == "Internal server error"


@integration
def test_bodies_reach_the_handler_exactly_and_binary_answers_are_decoded(fx: Fixture) -> None:
    # GIVEN a JSON body with odd spacing and non-ASCII text, and a body that is not UTF-8
    raw = '{"a":  1,\n "name": "Zoë"}'
    status, _, body = fx.http("POST", "/items", {"X-Token": "allow"}, raw.encode())
    binary = fx.http("POST", "/open", {}, b"\xff\x00\xfe")
    # THEN the first arrives character for character, the second base64-encoded
    assert status == 201
    assert json.loads(body)["event"]["body"] == raw and json.loads(body)["event"]["isBase64Encoded"] is False
    event = json.loads(binary[2])["event"]
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\xff\x00\xfe"
    # AND a base64 answer of the handler reaches the client as bytes
    assert fx.http("GET", "/open?binary=1")[2] == b"\x00\xffbin"


@integration
def test_local_control_routes_list_queues_and_fire_schedules(fx: Fixture) -> None:
    status, _, body = fx.http("GET", "/_local/queues")
    assert status == 200
    assert set(json.loads(body)["queues"]) == {"WorkQueue", "WorkDLQ", "PoisonQueue", "PoisonDLQ"}
    assert set(json.loads(body)["queues"]["WorkQueue"]) >= {"visible", "in_flight"}
    status, _, body = fx.http("POST", "/_local/schedules/Tick/fire")
    assert status == 200 and json.loads(body)["result"]["detail_type"] == "Scheduled Event"
    assert fx.http("POST", "/_local/schedules/TickFn/fire")[0] == 404  # two schedules: ambiguous
    assert fx.http("GET", "/_local/nothing")[0] == 404


# ------------------------------------------------------------------------------------------- pollers


@integration
def test_a_partial_batch_failure_deletes_only_the_successes(fx: Fixture) -> None:
    # GIVEN three messages, one of which the worker reports as a batch item failure
    sqs = fx.sqs()
    url = fx.stack.queue_urls["WorkQueue"]
    attribute = {"kind": {"DataType": "String", "StringValue": "a"}}
    sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "1", "MessageBody": "ok-1", "MessageAttributes": attribute},
            {"Id": "2", "MessageBody": "fail-1"},
            {"Id": "3", "MessageBody": "ok-2"},
        ],
    )
    dlq = fx.stack.queue_urls["WorkDLQ"]
    # WHEN the poller has run until the failing one reached the DLQ (maxReceiveCount 3)
    moved = wait_for(lambda: sqs.receive_message(QueueUrl=dlq).get("Messages"), what="fail-1 in WorkDLQ")
    # THEN the successes ran exactly once (deleted after success), the failure three times
    records = [r for batch in fx.log("work") for r in batch]
    bodies = [r["body"] for r in records]
    assert (bodies.count("ok-1"), bodies.count("ok-2"), bodies.count("fail-1")) == (1, 1, 3)
    assert [m["Body"] for m in moved] == ["fail-1"]
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessages"] == counts["ApproximateNumberOfMessagesNotVisible"] == "0"
    # AND the records had Lambda's SQS shape
    first = next(r for r in records if r["body"] == "ok-1")
    assert first["eventSource"] == "aws:sqs" and first["awsRegion"] == "us-east-1"
    assert first["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:fx-WorkQueue"
    assert first["messageAttributes"] == {
        "kind": {
            "stringValue": "a",
            "binaryValue": None,
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        }
    }
    assert {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    } <= set(first["attributes"])
    receives = [r["attributes"]["ApproximateReceiveCount"] for r in records if r["body"] == "fail-1"]
    assert receives == ["1", "2", "3"]


@integration
def test_a_message_whose_batch_always_raises_lands_in_the_dlq(fx: Fixture) -> None:
    # GIVEN a worker that raises on every batch, on a queue with maxReceiveCount 2
    sqs = fx.sqs()
    sqs.send_message(QueueUrl=fx.stack.queue_urls["PoisonQueue"], MessageBody="poison")
    dlq = fx.stack.queue_urls["PoisonDLQ"]
    # WHEN the poller keeps feeding it
    moved = wait_for(lambda: sqs.receive_message(QueueUrl=dlq).get("Messages"), what="poison in PoisonDLQ")
    # THEN moto's RedrivePolicy moved it after two failed receives, and the poller thread is still alive
    assert [m["Body"] for m in moved] == ["poison"]
    assert fx.log("poison").count(["poison"]) == 2
    sqs.send_message(QueueUrl=fx.stack.queue_urls["PoisonQueue"], MessageBody="again")
    wait_for(lambda: ["again"] in fx.log("poison"), what="the poller to go on after failures")


def test_which_messages_failed_follows_lambda_rules() -> None:
    ids = {"a", "b"}
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "a"}]}, ids, True) == {"a"}
    assert failed_message_ids({"batchItemFailures": []}, ids, True) == set()
    assert failed_message_ids(None, ids, True) == set()
    assert failed_message_ids({}, ids, True) == set()
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, ids, True) == ids
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, ids, True) == ids
    assert failed_message_ids({"batchItemFailures": [{"id": "a"}]}, ids, True) == ids
    assert failed_message_ids("not json", ids, True) == ids
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "a"}]}, ids, False) == set()


# ----------------------------------------------------------------------------------------- schedules


@integration
def test_fire_schedule_runs_the_function_with_an_eventbridge_event(fx: Fixture) -> None:
    result = fx.stack.fire_schedule("TickFn.Tick")
    event = fx.log("tick")[-1]
    assert result == {
        "detail_type": "Scheduled Event",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/fx-TickFnTick"],
    }
    assert (event["source"], event["account"], event["region"], event["detail"]) == (
        "aws.events", "123456789012", "us-east-1", {},
    )  # fmt: skip
    assert fx.stack.schedules["TickFn.Nightly"].timed and fx.stack.schedules["TickFn.Tick"].interval == 86400
    with pytest.raises(KeyError):
        fx.stack.fire_schedule("NoSuchSchedule")


def test_a_timed_schedule_fires_after_each_interval_not_at_start() -> None:
    calls: list[float] = []
    schedule = Schedule("t", "rate(1 minute)", lambda event: calls.append(time.monotonic()))
    schedule.interval = 0.2  # a minute is too long for a test; the timer loop is what is under test
    started = time.monotonic()
    schedule.start()
    try:
        assert calls == []
        wait_for(lambda: len(calls) >= 2, timeout=5, what="two fires")
    finally:
        schedule.stop()
    assert calls[0] - started >= 0.19


def test_rate_and_cron_expressions() -> None:
    assert (rate_seconds("rate(1 hour)"), rate_seconds("rate(5 minutes)"), rate_seconds("rate(2 days)")) == (
        3600, 300, 172800,
    )  # fmt: skip
    at = datetime(2024, 3, 9, 10, 7, tzinfo=UTC)  # a Saturday
    assert CronExpression("cron(0 3 * * ? *)").next_after(at) == datetime(2024, 3, 10, 3, 0, tzinfo=UTC)
    assert CronExpression("cron(*/15 * * * ? *)").next_after(at) == datetime(2024, 3, 9, 10, 15, tzinfo=UTC)
    assert CronExpression("cron(30 9 ? * MON-FRI *)").next_after(at) == datetime(
        2024, 3, 11, 9, 30, tzinfo=UTC
    )
    assert CronExpression("cron(0 0 1 JAN,JUL ? *)").next_after(at) == datetime(2024, 7, 1, 0, 0, tzinfo=UTC)
    assert CronExpression("cron(0 12 ? * 1 *)").next_after(at) == datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
    for bad in (
        "cron(0 3 * * * *)",
        "cron(0 3 L * ? *)",
        "cron(0 3 ? * 2#1 *)",
        "cron(61 * * * ? *)",
        "rate(0 hours)",
    ):
        with pytest.raises(ScheduleError):
            rate_seconds(bad) or CronExpression(bad)
    assert not Schedule("x", "cron(0 3 L * ? *)", lambda e: None).timed


# --------------------------------------------------------------------------------------------- ports


@integration
def test_a_port_in_use_is_a_clear_error(local_stack: LocalStack) -> None:
    # GIVEN a port some other program listens on
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # WHEN the stack should use it for the API or for moto
        # THEN it says which port is taken and how to choose another
        with pytest.raises(PortInUseError, match=f"{port}.*--port"):
            LocalStack("template.yaml", ROOT, api_port=port).start()
        with pytest.raises(PortInUseError, match=f"{port}.*--moto-port"):
            LocalStack("template.yaml", ROOT, moto_port=port).start()
        with pytest.raises(PortInUseError, match=f"{port}.*--stripe-port"):
            LocalStack("template.yaml", ROOT, stripe_port=port).start()
    # AND the running stack was not disturbed
    assert threading.active_count() > 1
    connection = http.client.HTTPConnection("127.0.0.1", local_stack.api_port, timeout=HTTP_TIMEOUT_S)
    connection.request("GET", "/nowhere")
    assert connection.getresponse().status == 404


@integration
def test_the_runner_prints_the_banner_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    # GIVEN a one-route template
    (tmp_path / "fns").mkdir()
    (tmp_path / "fns" / "app.py").write_text(
        "def ping(event, context):\n    return {'statusCode': 200, 'body': 'pong'}\n"
    )
    (tmp_path / "template.yaml").write_text(
        "Resources:\n  PingFn:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      CodeUri: fns/\n      Handler: app.ping\n      Runtime: python3.11\n      Events:\n"
        "        Ping: {Type: Api, Properties: {Path: /ping, Method: GET}}\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "infra"), str(ROOT / "layers" / "neruba")]),
    }
    # WHEN `neruba local run` starts on free ports
    command = [sys.executable, "-m", "neruba_tools.local.run", "--template", str(tmp_path / "template.yaml")]
    process = subprocess.Popen(
        [*command, "--port", "0", "--moto-port", "0", "--no-seed", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        lines: list[str] = []
        while not lines or "Ctrl-C" not in lines[-1]:
            line = process.stdout.readline()  # type: ignore[union-attr]
            assert line, f"the runner exited early: {process.stderr.read()}"  # type: ignore[union-attr]
            lines.append(line)
        base = next(line for line in lines if line.startswith("Base URL: ")).split(": ", 1)[1].strip()
        # THEN the banner's base URL serves the template's route, and the moto endpoint is named
        with urllib_request.urlopen(f"{base}/ping", timeout=HTTP_TIMEOUT_S) as response:
            assert response.read() == b"pong"
        assert any(line.startswith("Moto endpoint: http://127.0.0.1:") for line in lines)
        # AND it says what the aws CLI needs besides the endpoint: a region and (any) credentials
        aws_cli = next(line for line in lines if line.startswith("AWS CLI: "))
        for needed in (
            "AWS_DEFAULT_REGION=us-east-1",
            "AWS_ACCESS_KEY_ID=",
            "AWS_SECRET_ACCESS_KEY=",
            "--endpoint-url",
        ):
            assert needed in aws_cli, aws_cli
        # AND SIGTERM stops it with exit code 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
