"""Does each function's IAM policy in template.yaml allow the calls it was seen making?

``function_policies`` evaluates every function's ``Policies`` (inline statements, and SAM policy templates
such as ``DynamoDBCrudPolicy`` expanded from aws-sam-translator's definitions) into ARNs under one stack
name; ``gaps`` compares recorded calls with them; ``report`` writes the gaps as a failure message.

Example:
    >>> doc = {"Resources": {"T": {"Type": "AWS::DynamoDB::Table"}, "F": {"Type": "AWS::Serverless::Function",
    ...     "Properties": {"CodeUri": "functions/f/", "Handler": "app.h", "Policies": [{"Statement": [
    ...     {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": {"Fn::GetAtt": ["T", "Arn"]}}]}]}}}}
    >>> [g.action for g in gaps(doc, [Call("f", "Query", "dynamodb:Query", table_arn("x-T"), "t")])]
    ['dynamodb:Query']
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from neruba_tools.iam_calls import canonical, logical_name, table_arn  # noqa: F401  (table_arn: doctest)
from neruba_tools.local.provision import local_template

STACK = "stack"


@dataclass(frozen=True, order=True)
class Call:
    """One permission a function's call needed: ``function`` is its folder under functions/."""

    function: str
    operation: str
    action: str
    resource: str
    seen_in: str  # the first test that made it


@dataclass(frozen=True, order=True)
class Gap:
    function: str  # logical id (or the folder when no function of the template has that code)
    action: str
    resource: str  # readable: logical name, or the ARN
    operation: str
    seen_in: str


def function_policies(document: Mapping[str, Any]) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Folder under functions/ -> (logical id, the statements of its policies, evaluated)."""
    template = local_template(document, STACK)
    found: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    for logical_id, spec in template.functions().items():
        folder = spec.code_uri.strip("/").rsplit("/", 1)[-1]
        statements: list[dict[str, Any]] = []
        for policy in spec.properties.get("Policies") or []:
            statements.extend(_statements(policy, template.evaluate))
        found[folder] = (logical_id, statements)
    return found


def _statements(policy: Any, evaluate: Any) -> list[dict[str, Any]]:
    if isinstance(policy, str):
        return []  # a managed policy by name: its content is not in the template
    if "Statement" in policy:
        body = evaluate(policy["Statement"])
        return body if isinstance(body, list) else [body]
    ((name, values),) = policy.items()
    definition = sam_policy_templates().get(name)
    if definition is None:
        raise ValueError(f"unknown SAM policy template {name}")
    given = values if isinstance(values, dict) else {}
    body = _substitute(definition["Definition"]["Statement"], given)
    return [body] if isinstance(body, dict) else list(evaluate(body))


def _substitute(node: Any, values: Mapping[str, Any]) -> Any:
    """A policy template's definition with its ``{"Ref": Parameter}`` replaced by the given values."""
    if isinstance(node, list):
        return [_substitute(item, values) for item in node]
    if isinstance(node, dict):
        if set(node) == {"Ref"} and node["Ref"] in values:
            return values[node["Ref"]]
        return {key: _substitute(value, values) for key, value in node.items()}
    return node


@cache
def sam_policy_templates() -> dict[str, Any]:
    """aws-sam-translator's policy template definitions (from the tools virtualenv, NERUBA_TOOLS_VENV)."""
    roots = [
        os.environ.get("NERUBA_TOOLS_VENV", ""),
        str(Path(__file__).resolve().parents[2] / ".venv-tools"),
    ]
    for root in filter(None, roots):
        pattern = (
            f"{root}/lib/python*/site-packages/samtranslator/policy_templates_data/policy_templates.json"
        )
        for path in glob.glob(pattern):
            templates: dict[str, Any] = json.loads(Path(path).read_text())["Templates"]
            return templates
    raise FileNotFoundError("aws-sam-translator's policy_templates.json not found: run `make tools`")


def _listed(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _matches(pattern: str, value: str, *, fold: bool) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if fold else 0) is not None


def allows(statements: Iterable[Mapping[str, Any]], action: str, resource: str) -> bool:
    """IAM's answer for one action on one resource: some Allow matches and no Deny does (conditions are
    not evaluated)."""
    verdict = False
    for statement in statements:
        actions, resources = _listed(statement.get("Action", [])), _listed(statement.get("Resource", []))
        if any(_matches(a, action, fold=True) for a in actions) and any(
            _matches(r, resource, fold=False) for r in resources
        ):
            if statement.get("Effect") == "Deny":
                return False
            verdict = True
    return verdict


def gaps(document: Mapping[str, Any], calls: Iterable[Call]) -> list[Gap]:
    """Every recorded permission the template's policy of the calling function does not grant."""
    policies = function_policies(document)
    template = local_template(document, STACK)  # resources may name template parameters: ${Name}
    ids = list(document.get("Resources", {}))
    found: dict[tuple[str, str, str], Gap] = {}
    for call in sorted(calls):
        logical_id, statements = policies.get(call.function, (call.function, []))
        resource = canonical(template.evaluate({"Fn::Sub": call.resource}), ids, STACK)
        key = (logical_id, call.action, resource)
        if key not in found and not allows(statements, call.action, resource):
            found[key] = Gap(
                logical_id, call.action, logical_name(resource, STACK), call.operation, call.seen_in
            )
    return sorted(found.values())


def report(found: list[Gap]) -> str:
    """The failure message: per function, each missing permission, the call that needed it, a test."""
    lines = ["IAM check: template.yaml does not allow these calls the functions made during the tests"]
    for function in sorted({g.function for g in found}):
        lines.append(f"  {function}:")
        for gap in (g for g in found if g.function == function):
            lines.append(f"    {gap.action} on {gap.resource}  (by {gap.operation}; seen in {gap.seen_in})")
    lines.append("Add each to the function's Policies in template.yaml (docs/deploy.md, 'IAM check').")
    return "\n".join(lines)
