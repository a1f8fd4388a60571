"""Transform template.yaml with the SAM translator, offline, and print the CloudFormation JSON.

Runs in the tools virtualenv (``.venv-tools/bin/python infra/sam_transform.py [TEMPLATE] [Name=Value ...]``,
the pairs being parameter values as ``sam deploy --parameter-overrides`` gives them), because
aws-sam-translator pins versions the app cannot share. Offline means: local CodeUri/ContentUri become
s3:// URIs, and managed policy names resolve from a fixed map instead of IAM.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

MANAGED = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSLambdaSQSQueueExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}


class OfflinePolicies:
    """Stands in for the IAM-backed ManagedPolicyLoader."""

    def load(self) -> dict[str, str]:
        return MANAGED


def main(path: str = "template.yaml", *overrides: str) -> int:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(path, encoding="utf-8") as handle:
        template: dict[str, Any] = yaml_parse(handle.read())
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://neruba-offline/{props[key].strip('/')}.zip"
    parameters = dict(pair.split("=", 1) for pair in overrides)
    output = transform(template, parameters, OfflinePolicies())  # type: ignore[arg-type]
    json.dump(output, sys.stdout, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
