"""What IAM authorises for one AWS API call: the (action, resource ARN) pairs a request needs.

A request is not always one action on one resource. DynamoDB authorises a transaction per item (a
``TransactWriteItems`` needs ``PutItem``/``UpdateItem``/``DeleteItem``/``ConditionCheckItem`` on each
item's table; ``TransactGetItems`` needs ``GetItem``), a batch per table, and a query or scan of an index on
the index's ARN (``table/NAME/index/INDEX``). SQS batch calls need the single-message action.

Example:
    >>> needed("dynamodb", "Query", {"TableName": "t", "IndexName": "by-kind"})
    [('dynamodb:Query', 'arn:aws:dynamodb:us-east-1:123456789012:table/t/index/by-kind')]
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from neruba_tools.local.intrinsics import ACCOUNT_ID, REGION

Permission = tuple[str, str]  # (service:Action, resource ARN)

_TRANSACT_WRITE = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
_SQS_SINGLE = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


def arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{resource}"


def table_arn(name: str, index: str | None = None) -> str:
    return arn("dynamodb", f"table/{name}" + (f"/index/{index}" if index else ""))


def needed(service: str, operation: str, params: dict[str, Any]) -> list[Permission]:
    """The permissions one call of ``operation`` on ``service`` (botocore names) with ``params`` needs."""
    if service == "dynamodb":
        return sorted(set(_dynamodb(operation, params)))
    if service == "sqs":
        action = f"sqs:{_SQS_SINGLE.get(operation, operation)}"
        url = params.get("QueueUrl")
        name = str(url).rstrip("/").rsplit("/", 1)[-1] if url else params.get("QueueName", "*")
        return [(action, arn("sqs", name))]
    if service == "ssm":
        names = params.get("Names") or [params.get("Name") or params.get("Path") or "*"]
        return [
            (f"ssm:{operation}", arn("ssm", "parameter" + ("" if n.startswith("/") else "/") + n))
            for n in names
        ]
    if service == "cloudwatch" and operation == "DescribeAlarms":
        if params.get("AlarmNames"):
            return [
                ("cloudwatch:DescribeAlarms", arn("cloudwatch", f"alarm:{n}")) for n in params["AlarmNames"]
            ]
        return [
            ("cloudwatch:DescribeAlarms", arn("cloudwatch", f"alarm:{params.get('AlarmNamePrefix', '')}*"))
        ]
    if service == "events" and operation == "PutEvents":
        buses = {entry.get("EventBusName") or "default" for entry in params.get("Entries", [])}
        return [
            ("events:PutEvents", b if b.startswith("arn:") else arn("events", f"event-bus/{b}"))
            for b in buses
        ]
    if service == "secretsmanager" and "SecretId" in params:
        secret = str(params["SecretId"])
        return [
            (
                f"secretsmanager:{operation}",
                secret if secret.startswith("arn:") else arn("secretsmanager", f"secret:{secret}"),
            )
        ]
    return [(f"{service}:{operation}", "*")]


def _dynamodb(operation: str, params: dict[str, Any]) -> Iterable[Permission]:
    if operation == "TransactWriteItems":
        for item in params.get("TransactItems", []):
            for kind, body in item.items():
                yield f"dynamodb:{_TRANSACT_WRITE[kind]}", table_arn(body["TableName"])
    elif operation == "TransactGetItems":
        for item in params.get("TransactItems", []):
            yield "dynamodb:GetItem", table_arn(item["Get"]["TableName"])
    elif operation in ("BatchGetItem", "BatchWriteItem"):
        for table in params.get("RequestItems", {}):
            yield f"dynamodb:{operation}", table_arn(table)
    elif "TableName" in params:
        yield f"dynamodb:{operation}", table_arn(params["TableName"], params.get("IndexName"))
    else:
        yield f"dynamodb:{operation}", "*"


def canonical(resource: str, logical_ids: Iterable[str], stack: str) -> str:
    """``resource`` with a stack-named physical name (``PREFIX-LogicalId``, as CloudFormation and the local
    stack name tables and queues) rewritten to ``stack-LogicalId``, and an alarm name prefix to ``stack-``,
    so that calls recorded under any stack name compare with the template evaluated under ``stack``."""
    ids = "|".join(sorted((re.escape(i) for i in logical_ids), key=len, reverse=True))
    named = re.sub(rf"(table/|:)[A-Za-z0-9_.-]+?-({ids})(?=$|/|\.fifo$)", rf"\g<1>{stack}-\g<2>", resource)
    return re.sub(r"(:alarm:)[A-Za-z0-9_.-]+-\*$", rf"\g<1>{stack}-*", named)


def logical_name(resource: str, stack: str) -> str:
    """A readable name for a canonical ARN: ``BillingTable``, ``LedgerTable/index/by-customer``,
    ``StripeSyncQueue``; the ARN itself when it names nothing of the template."""
    match = re.search(rf"(?:table/|:){re.escape(stack)}-([A-Za-z0-9]+(?:/index/.*)?)$", resource)
    return match.group(1) if match else resource
