"""The template's tables and queues, created on a (moto) endpoint from the template itself: no second list.

Physical names are ``{stack_name}-{LogicalId}`` (``.fifo`` appended for FIFO queues) unless the template
gives TableName / QueueName. Dead-letter queues are created before the queues that redrive to them.

Example:
    >>> names = provision_template(load_template("template.yaml"), "neruba-local")  # doctest: +SKIP
    >>> names["UsageTable"]  # doctest: +SKIP
    'neruba-local-UsageTable'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.exceptions import ClientError

from neruba_tools.local.intrinsics import ACCOUNT_ID, REGION, Intrinsics, TemplateError, as_text
from neruba_tools.local.template import Template

QUEUE_ATTRIBUTES = (
    "VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize", "FifoQueue",
    "ReceiveMessageWaitTimeSeconds", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit",
    "SqsManagedSseEnabled", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds",
)  # fmt: skip
INDEX_KEYS = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput", "OnDemandThroughput")


class ProvisionError(RuntimeError):
    """A table or queue of the template could not be created."""


class LocalResolver:
    """``Ref`` / ``Fn::GetAtt`` of the template's resources as the local stack names them.

    Example:
        >>> doc = {"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}
        >>> LocalResolver(doc, "s")("Q", "Arn")
        'arn:aws:sqs:us-east-1:123456789012:s-Q'
    """

    NAME_PROPERTY = {
        "AWS::DynamoDB::Table": "TableName",
        "AWS::SQS::Queue": "QueueName",
        "AWS::Serverless::Function": "FunctionName",
    }

    def __init__(self, document: Mapping[str, Any], stack_name: str) -> None:
        self.document = document
        self.stack_name = stack_name
        self.intrinsics: Intrinsics | None = None  # set by local_template(), for names given as intrinsics

    def physical_name(self, logical_id: str) -> str:
        resource = self.document["Resources"][logical_id]
        props = resource.get("Properties") or {}
        given = props.get(self.NAME_PROPERTY.get(resource.get("Type", ""), ""))
        if given is not None:
            return as_text(self.intrinsics.evaluate(given) if self.intrinsics else given)
        fifo = as_text(props.get("FifoQueue", False)) == "true"
        return f"{self.stack_name}-{logical_id}" + (".fifo" if fifo else "")

    def __call__(self, logical_id: str, attribute: str | None) -> Any:
        resource = self.document["Resources"].get(logical_id)
        if resource is None:
            raise TemplateError(f"no resource {logical_id}")
        kind, name = resource.get("Type", ""), self.physical_name(logical_id)
        arn = f"arn:aws:{{}}:{REGION}:{ACCOUNT_ID}:{{}}"
        values: dict[str | None, Any]
        if kind == "AWS::SQS::Queue":
            url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{name}"
            values = {None: url, "QueueUrl": url, "QueueName": name, "Arn": arn.format("sqs", name)}
        elif kind == "AWS::DynamoDB::Table":
            table = arn.format("dynamodb", f"table/{name}")
            values = {None: name, "Arn": table, "StreamArn": f"{table}/stream/local"}
        elif kind == "AWS::Serverless::Function":
            values = {None: name, "Arn": arn.format("lambda", f"function:{name}")}
        elif kind == "AWS::Serverless::LayerVersion":
            values = {None: arn.format("lambda", f"layer:{name}:1")}
        elif kind in ("AWS::Serverless::Api", "AWS::ApiGateway::RestApi"):
            values = {None: "local", "RootResourceId": "root"}
        elif kind == "AWS::SNS::Topic":
            values = {None: arn.format("sns", name), "TopicName": name}
        else:
            values = {None: name}
        if attribute in values:
            return values[attribute]
        return arn.format("local", f"{logical_id}/{attribute}")


def local_template(
    document: Mapping[str, Any], stack_name: str = "neruba-local", parameters: Mapping[str, Any] | None = None
) -> Template:
    """``Template`` whose Ref/GetAtt give the local stack's names.

    Example:
        >>> local_template({"Resources": {"T": {"Type": "AWS::DynamoDB::Table"}}}, "s").evaluate({"Ref": "T"})
        's-T'
    """
    resolver = LocalResolver(document, stack_name)
    intrinsics = Intrinsics(document, resolver, parameters, stack_name)
    resolver.intrinsics = intrinsics
    return Template(document, intrinsics)


def _table_request(name: str, props: Mapping[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TableName": name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if request["BillingMode"] == "PROVISIONED":
        request["ProvisionedThroughput"] = props.get(
            "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        )
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if props.get(key):
            request[key] = [{k: v for k, v in index.items() if k in INDEX_KEYS} for index in props[key]]
    stream = props.get("StreamSpecification")
    if stream and stream.get("StreamViewType"):
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    return request


def _queue_order(queues: Mapping[str, Any]) -> list[str]:
    """Queues ordered so that every queue comes after the queues its properties refer to (its DLQ)."""

    def refs(value: Any) -> set[str]:
        if isinstance(value, dict):
            if set(value) == {"Fn::GetAtt"}:
                target = value["Fn::GetAtt"]
                return {str((target.split(".", 1) if isinstance(target, str) else target)[0])}
            if set(value) == {"Ref"}:
                return {str(value["Ref"])}
            return set().union(*(refs(v) for v in value.values())) if value else set()
        if isinstance(value, list):
            return set().union(*(refs(v) for v in value)) if value else set()
        return set()

    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(logical_id: str) -> None:
        if logical_id in ordered:
            return
        if logical_id in visiting:
            raise ProvisionError(f"queues refer to each other in a cycle through {logical_id}")
        visiting.add(logical_id)
        for dependency in sorted(refs(queues[logical_id].get("Properties") or {}) & set(queues)):
            visit(dependency)
        visiting.discard(logical_id)
        ordered.append(logical_id)

    for logical_id in queues:
        visit(logical_id)
    return ordered


def provision_template(
    template: Mapping[str, Any] | Template,
    stack_name: str = "neruba-local",
    parameters: Mapping[str, Any] | None = None,
    *,
    session: Any = None,
    endpoint_url: str | None = None,
) -> dict[str, str]:
    """Create every table and queue of ``template`` (idempotent); returns logical id -> name or queue URL.

    Clients come from ``session`` (default: a new boto3 session) and ``endpoint_url`` (default:
    ``AWS_ENDPOINT_URL`` or an in-process ``mock_aws``).
    """
    spec = template if isinstance(template, Template) else local_template(template, stack_name, parameters)
    session = session or boto3.session.Session()
    dynamodb = session.client("dynamodb", endpoint_url=endpoint_url, region_name=REGION)
    sqs = session.client("sqs", endpoint_url=endpoint_url, region_name=REGION)
    resolve = spec.intrinsics.resolve
    created: dict[str, str] = {}
    for logical_id, props in spec.tables().items():
        name = resolve(logical_id, None)
        try:
            dynamodb.create_table(**_table_request(name, props))
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise ProvisionError(f"table {logical_id} ({name}): {exc}") from exc
        ttl = props.get("TimeToLiveSpecification")
        if ttl and as_text(ttl.get("Enabled")) == "true":
            spec_ttl = {"Enabled": True, "AttributeName": ttl["AttributeName"]}
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=spec_ttl)
        created[logical_id] = name
    queues = spec.resources("AWS::SQS::Queue")
    evaluated = spec.queues()
    for logical_id in _queue_order(queues):
        props = evaluated[logical_id]
        attributes = {key: as_text(props[key]) for key in QUEUE_ATTRIBUTES if key in props}
        if attributes.get("FifoQueue") == "false":
            del attributes["FifoQueue"]
        for key in ("RedrivePolicy", "RedriveAllowPolicy"):
            if key in props:
                attributes[key] = as_text(props[key])
        name = resolve(logical_id, "QueueName")
        try:
            created[logical_id] = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("QueueAlreadyExists", "QueueNameExists"):
                raise ProvisionError(f"queue {logical_id} ({name}): {exc}") from exc
            created[logical_id] = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            attributes.pop("FifoQueue", None)
            sqs.set_queue_attributes(QueueUrl=created[logical_id], Attributes=attributes)
    return created


def redrive_policy(sqs: Any, queue_url: str) -> dict[str, Any] | None:
    """The RedrivePolicy of a queue, parsed (None without one)."""
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])
    text = attributes.get("Attributes", {}).get("RedrivePolicy")
    return json.loads(text) if text else None
