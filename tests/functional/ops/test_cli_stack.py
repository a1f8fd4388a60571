"""``neruba keys ... --stack NAME`` on AWS: the keys table is read from the stack's resources, so the
first admin key needs nothing but credentials (no ``NERUBA_*`` settings)."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
import pytest

from neruba.dal.keys import KeysRepository
from neruba_tools.cli import main


def _stack_with_a_keys_table() -> str:
    template = {
        "Resources": {
            "KeysTable": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                },
            }
        }
    }
    boto3.client("cloudformation").create_stack(StackName="neruba-prod", TemplateBody=json.dumps(template))
    resources = boto3.client("cloudformation").list_stack_resources(StackName="neruba-prod")
    return str(resources["StackResourceSummaries"][0]["PhysicalResourceId"])


def test_keys_create_with_only_a_stack_name(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    table = _stack_with_a_keys_table()
    for name in [n for n in list(os.environ) if n.startswith("NERUBA_")]:
        monkeypatch.delenv(name)
    assert main(["keys", "create", "--scope", "admin", "--stack", "neruba-prod"]) == 0
    plaintext = next(
        line.split(": ", 1)[1]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("API key: ")
    )
    key = KeysRepository(table).authenticate(plaintext)
    assert key is not None and key.scopes == {"admin"}


def test_an_unknown_stack_is_one_line(aws: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "list", "--stack", "no-such-stack"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot list the resources of stack 'no-such-stack'") and "\n" not in err
