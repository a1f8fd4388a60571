"""The IAM check's comparator (docs/deploy.md "IAM check"): what a call needs, and what a policy allows."""

from __future__ import annotations

from typing import Any

from neruba_tools.iam_calls import needed, table_arn
from neruba_tools.iam_policies import Call, gaps, report


def _template(*statements: dict[str, Any], policies: list[Any] | None = None) -> dict[str, Any]:
    return {
        "Resources": {
            "LedgerTable": {"Type": "AWS::DynamoDB::Table"},
            "BillingTable": {"Type": "AWS::DynamoDB::Table"},
            "SyncQueue": {"Type": "AWS::SQS::Queue"},
            "WorkerFunction": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": "functions/worker/",
                    "Handler": "app.lambda_handler",
                    "Policies": policies if policies is not None else [{"Statement": list(statements)}],
                },
            },
        }
    }


def _allow(actions: list[str], *resources: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": list(resources)}


def _calls(service: str, operation: str, params: dict[str, Any]) -> list[Call]:
    return [Call("worker", operation, a, r, "t::x") for a, r in needed(service, operation, params)]


LEDGER = {"Fn::GetAtt": ["LedgerTable", "Arn"]}
BILLING = {"Fn::GetAtt": ["BillingTable", "Arn"]}


def test_a_missing_action_on_a_table_is_a_gap_named_by_function_action_and_table() -> None:
    template = _template(_allow(["dynamodb:GetItem"], BILLING))
    found = gaps(template, _calls("dynamodb", "BatchGetItem", {"RequestItems": {"prod-BillingTable": {}}}))
    assert [(g.function, g.action, g.resource) for g in found] == [
        ("WorkerFunction", "dynamodb:BatchGetItem", "BillingTable")
    ]
    assert "WorkerFunction:\n    dynamodb:BatchGetItem on BillingTable  (by BatchGetItem" in report(found)
    granted = _template(_allow(["dynamodb:GetItem", "dynamodb:BatchGetItem"], BILLING))
    assert (
        gaps(granted, _calls("dynamodb", "BatchGetItem", {"RequestItems": {"prod-BillingTable": {}}})) == []
    )


def test_a_query_on_an_index_needs_the_index_arn_not_the_table_arn() -> None:
    query = _calls("dynamodb", "Query", {"TableName": "test-LedgerTable", "IndexName": "by-customer"})
    table_only = _template(_allow(["dynamodb:Query"], LEDGER))
    assert [(g.action, g.resource) for g in gaps(table_only, query)] == [
        ("dynamodb:Query", "LedgerTable/index/by-customer")
    ]
    with_index = _template(_allow(["dynamodb:Query"], LEDGER, {"Fn::Sub": "${LedgerTable.Arn}/index/*"}))
    assert gaps(with_index, query) == []
    other_index = _template(_allow(["dynamodb:Query"], {"Fn::Sub": "${LedgerTable.Arn}/index/by-expiry"}))
    assert len(gaps(other_index, query)) == 1


def test_a_transaction_needs_each_items_own_action_on_its_table() -> None:
    transaction = {
        "TransactItems": [
            {"Put": {"TableName": "test-LedgerTable", "Item": {}}},
            {"ConditionCheck": {"TableName": "test-BillingTable", "Key": {}}},
            {"Delete": {"TableName": "test-LedgerTable", "Key": {}}},
        ]
    }
    calls = _calls("dynamodb", "TransactWriteItems", transaction)
    template = _template(_allow(["dynamodb:PutItem"], LEDGER), _allow(["dynamodb:UpdateItem"], BILLING))
    assert [(g.action, g.resource) for g in gaps(template, calls)] == [
        ("dynamodb:ConditionCheckItem", "BillingTable"),
        ("dynamodb:DeleteItem", "LedgerTable"),
    ]
    reads = _calls(
        "dynamodb", "TransactGetItems", {"TransactItems": [{"Get": {"TableName": "x-LedgerTable"}}]}
    )
    assert [g.action for g in gaps(_template(), reads)] == ["dynamodb:GetItem"]
    assert gaps(_template(_allow(["dynamodb:GetItem"], LEDGER)), reads) == []


def test_sqs_batches_need_the_single_message_action_on_the_queue() -> None:
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/test-SyncQueue"
    calls = _calls("sqs", "SendMessageBatch", {"QueueUrl": url, "Entries": []})
    assert gaps(_template(_allow(["sqs:SendMessage"], {"Fn::GetAtt": ["SyncQueue", "Arn"]})), calls) == []
    assert [(g.action, g.resource) for g in gaps(_template(), calls)] == [("sqs:SendMessage", "SyncQueue")]


def test_wildcards_deny_and_sam_policy_templates_are_understood() -> None:
    get = _calls("dynamodb", "GetItem", {"TableName": "test-LedgerTable", "Key": {}})
    assert gaps(_template(_allow(["dynamodb:*"], "*")), get) == []
    deny = {"Effect": "Deny", "Action": "dynamodb:GetItem", "Resource": "*"}
    assert len(gaps(_template(_allow(["dynamodb:*"], "*"), deny), get)) == 1
    crud = _template(policies=[{"DynamoDBCrudPolicy": {"TableName": {"Ref": "LedgerTable"}}}])
    assert gaps(crud, get) == []
    assert len(gaps(crud, _calls("dynamodb", "GetItem", {"TableName": "test-BillingTable", "Key": {}}))) == 1


def test_calls_name_their_resources_as_iam_does() -> None:
    assert needed("dynamodb", "Query", {"TableName": "t"}) == [("dynamodb:Query", table_arn("t"))]
    assert needed("ssm", "GetParameter", {"Name": "/neruba/stripe"}) == [
        ("ssm:GetParameter", "arn:aws:ssm:us-east-1:123456789012:parameter/neruba/stripe")
    ]
