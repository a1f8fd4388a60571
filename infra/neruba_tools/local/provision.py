"""Creating the template's tables and queues on a moto endpoint (no second list of resources).

Example:
    >>> template = load_template("template.yaml")  # doctest: +SKIP
    >>> names = provision_template(template, stack_name="neruba-local")  # doctest: +SKIP
    >>> names["UsageTable"]  # doctest: +SKIP
    'neruba-local-UsageTable'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import boto3

from neruba_tools.local.template import ACCOUNT_ID, REGION, Intrinsics, resources_of

TABLE_KEYS = (
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "StreamSpecification",
)
QUEUE_ATTRIBUTES = {
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "FifoQueue",
    "ContentBasedDeduplication",
}


def physical_name(stack_name: str, logical_id: str, resource: Mapping[str, Any]) -> str:
    fifo = str(resource.get("Properties", {}).get("FifoQueue", "")).lower() == "true"
    return f"{stack_name}-{logical_id}" + (".fifo" if fifo else "")


class LocalResolver:
    """Answers Ref and GetAtt for the template's resources as the local stack names them."""

    def __init__(self, template: Mapping[str, Any], stack_name: str, endpoint: str | None = None) -> None:
        self.template = template
        self.stack_name = stack_name
        self.endpoint = endpoint

    def __call__(self, logical_id: str, attribute: str | None) -> Any:
        resource = self.template["Resources"].get(logical_id)
        if resource is None:
            raise KeyError(f"no resource {logical_id}")
        kind = resource["Type"]
        name = physical_name(self.stack_name, logical_id, resource)
        if kind == "AWS::SQS::Queue":
            url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{name}"
            return {
                None: url,
                "QueueUrl": url,
                "QueueName": name,
                "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}",
            }[attribute]
        if kind == "AWS::DynamoDB::Table":
            arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}"
            return {None: name, "Arn": arn, "StreamArn": arn + "/stream/local"}[attribute]
        if kind == "AWS::Serverless::Function":
            return name if attribute is None else f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
        return name if attribute is None else f"arn:aws:local:{REGION}:{ACCOUNT_ID}:{logical_id}/{attribute}"


def provision_template(
    template: Mapping[str, Any], stack_name: str = "neruba-local", parameters: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Create (idempotently) every table and queue of ``template``; returns logical id -> name or URL."""
    resolver = LocalResolver(template, stack_name)
    intrinsics = Intrinsics(template, resolver, parameters, stack_name)
    dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
    created: dict[str, str] = {}
    existing_tables = set(dynamodb.list_tables().get("TableNames", []))
    for logical_id, resource in resources_of(template, "AWS::DynamoDB::Table").items():
        props = intrinsics.evaluate(resource.get("Properties", {}))
        name = resolver(logical_id, None)
        if name not in existing_tables:
            spec = {key: props[key] for key in TABLE_KEYS if key in props}
            dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **spec)
        created[logical_id] = name
    queues = resources_of(template, "AWS::SQS::Queue")
    # dead-letter queues first, so every RedrivePolicy names a queue that exists
    ordered = sorted(queues, key=lambda q: "RedrivePolicy" in queues[q].get("Properties", {}))
    for logical_id in ordered:
        props = intrinsics.evaluate(queues[logical_id].get("Properties", {}))
        attributes = {
            key: str(value).lower() if isinstance(value, bool) else str(value)
            for key, value in props.items()
            if key in QUEUE_ATTRIBUTES
        }
        if "RedrivePolicy" in props:
            import json

            attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
        url = sqs.create_queue(QueueName=resolver(logical_id, "QueueName"), Attributes=attributes)["QueueUrl"]
        created[logical_id] = url
    return created
