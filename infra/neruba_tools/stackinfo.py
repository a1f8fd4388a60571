"""Where a stack's tables and queues are: from CloudFormation on AWS, from the local naming on a local stack.

The template is the one list: the logical ids come from template.yaml; their physical names come from
``ListStackResources`` of ``--stack NAME`` on AWS, or from the local stack's rule (``{stack}-{LogicalId}``)
when the AWS endpoint is local (``--endpoint-url http://127.0.0.1:5055`` or ``AWS_ENDPOINT_URL``).

Example:
    >>> is_local_endpoint("http://127.0.0.1:5055")
    True
    >>> is_local_endpoint(None)
    False
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
LOCAL_STACK = "neruba-local"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


class StackError(RuntimeError):
    """The stack or one of its resources cannot be found."""


def aws_setup_problem(exc: BaseException) -> str | None:
    """One line for an error that comes from the operator's AWS setup (no region, no credentials, a
    table or queue that is not there), or None for any other error."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        InvalidRegionError,
        NoCredentialsError,
        NoRegionError,
        ProfileNotFound,
    )

    moto_hint = (
        "give the local stack's Moto endpoint (the banner's \"Moto endpoint:\" line), not its Base URL"
    )
    if isinstance(exc, EndpointConnectionError) and is_local_endpoint(endpoint_url()):
        return f"nothing answers at {endpoint_url()}: start the local stack (make run) and {moto_hint}"
    if isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code", "")).isdigit():
        status = exc.response["Error"]["Code"]  # an HTTP status with no AWS error: not an AWS endpoint
        where = endpoint_url() or "the endpoint"
        return f"{where} is no AWS endpoint (HTTP {status} to {exc.operation_name}): {moto_hint}"
    if isinstance(exc, ProfileNotFound):
        return f"no AWS profile {exc.kwargs.get('profile')!r} (AWS_PROFILE); `aws configure list-profiles`"
    if isinstance(exc, InvalidRegionError):
        return f"{exc.kwargs.get('region_name')!r} is no AWS region: check AWS_REGION (or AWS_DEFAULT_REGION)"
    if isinstance(exc, NoRegionError):
        return "no AWS region: export AWS_REGION (or AWS_DEFAULT_REGION), or use a profile that has one"
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials: export AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in (
            "ResourceNotFoundException",
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
        ):
            where = endpoint_url() or "AWS"
            return (
                f"a table or queue of this stack does not exist at {where} ({exc.operation_name}): "
                f"check --stack (the local stack is {LOCAL_STACK!r})"
            )
    return None


def endpoint_url() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL") or None


def is_local_endpoint(url: str | None) -> bool:
    """True for an endpoint on this machine (the local stack's moto server)."""
    return bool(url) and (urlparse(url).hostname or "") in LOCAL_HOSTS


def boto_client(service: str, **config: Any) -> Any:
    """A boto3 client on the current endpoint (``AWS_ENDPOINT_URL`` when set)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        service, endpoint_url=endpoint_url(), config=Config(**config) if config else None
    )


@dataclass(frozen=True)
class DeadLetterQueue:
    """A queue the template uses as a dead-letter queue: of a source queue (its RedrivePolicy), or of
    functions (an on-failure destination or a function's DeadLetterQueue), whose messages have no queue to
    go back to."""

    logical_id: str
    source_queue: str | None = None
    feeders: tuple[str, ...] = ()


DLQ_KEYS = {"OnFailure", "DeadLetterQueue", "DeadLetterConfig"}


def _queue_refs(value: Any, queues: set[str], under_dlq_key: bool = False) -> set[str]:
    """Logical ids of queues named by ``!GetAtt Q.Arn`` (or ``!Ref Q``) under a dead-letter key."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if under_dlq_key and key in ("Fn::GetAtt", "Ref"):
                target = item.split(".", 1)[0] if isinstance(item, str) else item[0]
                if target in queues:
                    found.add(str(target))
            else:
                found |= _queue_refs(item, queues, under_dlq_key or key in DLQ_KEYS)
    elif isinstance(value, list):
        for item in value:
            found |= _queue_refs(item, queues, under_dlq_key)
    return found


@dataclass
class StackInfo:
    """The physical names of one stack's resources."""

    stack_name: str
    template_path: Path = DEFAULT_TEMPLATE
    local: bool = False

    @cached_property
    def document(self) -> dict[str, Any]:
        from neruba_tools.local.intrinsics import load_template

        return load_template(self.template_path)

    @cached_property
    def physical(self) -> dict[str, str]:
        """Logical id -> physical id (queue URL for queues, table name for tables)."""
        if self.local:
            from neruba_tools.local.provision import local_template

            template = local_template(self.document, self.stack_name)
            kinds = ("AWS::SQS::Queue", "AWS::DynamoDB::Table")
            names = {
                logical_id: str(template.intrinsics.resolve(logical_id, None))
                for logical_id, resource in self.document["Resources"].items()
                if resource.get("Type") in kinds
            }
            self._check_local_stack(names)
            return names
        cloudformation = boto_client("cloudformation")
        found: dict[str, str] = {}
        try:
            for page in cloudformation.get_paginator("list_stack_resources").paginate(
                StackName=self.stack_name
            ):
                for summary in page["StackResourceSummaries"]:
                    found[summary["LogicalResourceId"]] = summary.get("PhysicalResourceId", "")
        except Exception as exc:
            why = aws_setup_problem(exc) or str(exc)
            raise StackError(f"cannot list the resources of stack {self.stack_name!r}: {why}") from exc
        return found

    def _check_local_stack(self, names: dict[str, str]) -> None:
        """A local stack exists when its tables do (one DescribeTable): a mistyped ``--stack`` is then
        named at once, as CloudFormation names an unknown stack on AWS."""
        tables = [n for k, n in names.items() if self.document["Resources"][k]["Type"].endswith("Table")]
        if not tables:
            return
        from botocore.exceptions import ClientError

        try:
            boto_client("dynamodb").describe_table(TableName=tables[0])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            raise StackError(
                f"stack {self.stack_name!r} does not exist at {endpoint_url() or 'this endpoint'} (no table "
                f"{tables[0]}): check --stack (the local stack is {LOCAL_STACK!r} unless started as another)"
            ) from exc

    def output(self, name: str) -> str:
        """A stack output's value (``ApiUrl``, ...), from CloudFormation."""
        if self.local:
            raise StackError(f"the local stack has no CloudFormation outputs ({name})")
        try:
            stacks = boto_client("cloudformation").describe_stacks(StackName=self.stack_name)["Stacks"]
        except Exception as exc:
            why = aws_setup_problem(exc) or str(exc)
            raise StackError(f"cannot read the outputs of stack {self.stack_name!r}: {why}") from exc
        for item in stacks[0].get("Outputs", []) if stacks else []:
            if item.get("OutputKey") == name:
                return str(item["OutputValue"])
        raise StackError(f"stack {self.stack_name!r} has no output {name}")

    def resource(self, logical_id: str) -> str:
        try:
            return self.physical[logical_id]
        except KeyError:
            raise StackError(f"stack {self.stack_name!r} has no resource {logical_id}") from None

    def redrive_pairs(self) -> dict[str, str]:
        """Every queue with a RedrivePolicy in the template: DLQ logical id -> source queue logical id."""
        pairs = {}
        for logical_id, resource in self.document["Resources"].items():
            policy = (resource.get("Properties") or {}).get("RedrivePolicy")
            if resource.get("Type") == "AWS::SQS::Queue" and policy:
                target = policy["deadLetterTargetArn"]["Fn::GetAtt"]
                dlq = target.split(".", 1)[0] if isinstance(target, str) else target[0]
                pairs[str(dlq)] = logical_id
        return dict(sorted(pairs.items()))

    def dead_letter_queues(self) -> dict[str, DeadLetterQueue]:
        """Every dead-letter queue the template declares, by logical id: the RedrivePolicy targets (with
        their source queue) and the queues named as a function's on-failure destination or DeadLetterQueue
        (with the functions that feed them)."""
        resources = self.document["Resources"]
        queues = {k for k, r in resources.items() if r.get("Type") == "AWS::SQS::Queue"}
        feeders: dict[str, list[str]] = {}
        for logical_id, resource in resources.items():
            if resource.get("Type") == "AWS::SQS::Queue":
                continue
            for dlq in _queue_refs(resource.get("Properties") or {}, queues):
                feeders.setdefault(dlq, []).append(logical_id)
        found = {
            dlq: DeadLetterQueue(dlq, source_queue=source) for dlq, source in self.redrive_pairs().items()
        }
        for dlq, names in feeders.items():
            known = found.get(dlq, DeadLetterQueue(dlq))
            found[dlq] = DeadLetterQueue(dlq, known.source_queue, tuple(sorted(names)))
        return dict(sorted(found.items()))

    def settings_environment(self) -> dict[str, str]:
        """``NERUBA_*`` variables of the template's Globals whose value is a ``!Ref`` of a resource."""
        variables: Mapping[str, Any] = (
            self.document.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        )
        env = {}
        for name, value in variables.items():
            target = value.get("Ref") if isinstance(value, dict) else None
            if name.startswith("NERUBA_") and target in self.physical:
                env[name] = self.physical[target]
        return env


def stack_for(stack_name: str | None, template: str | Path | None = None) -> StackInfo:
    """The stack named ``stack_name`` (default: the local stack when the endpoint is local)."""
    local = is_local_endpoint(endpoint_url())
    if stack_name is None:
        if not local:
            raise StackError(
                "give --stack NAME (the CloudFormation stack) or point --endpoint-url at a local stack"
            )
        stack_name = LOCAL_STACK
    return StackInfo(stack_name, Path(template) if template else DEFAULT_TEMPLATE, local=local)


def use_stack_settings(
    stack_name: str | None, template: str | Path | None = None, *, require: bool = True
) -> None:
    """Point this process's ``NERUBA_*`` settings at a stack's tables and queues: the stack given, or the
    local stack when the endpoint is local and no ``NERUBA_OPS_TABLE`` is set; otherwise keep the
    environment as it is (the settings then come from ``NERUBA_*`` variables, as for ``neruba keys``).
    With ``require``, an environment that lacks some of them is a StackError naming the missing ones and
    the ways to give a stack."""
    if stack_name is None and (os.environ.get("NERUBA_OPS_TABLE") or not is_local_endpoint(endpoint_url())):
        if require:
            _require_settings()
        return
    os.environ.update(stack_for(stack_name, template).settings_environment())
    from neruba.dal.clients import reset_clients
    from neruba.settings import get_settings

    reset_clients()
    get_settings.cache_clear()


def _require_settings() -> None:
    from neruba.settings import check_environment

    problems = check_environment(os.environ)
    if problems:
        names = ", ".join(problem.split(":", 1)[0] for problem in problems)
        raise StackError(
            "give --stack NAME (the deployed stack), --endpoint-url of a local stack, or every NERUBA_* "
            f"setting (missing or invalid: {names}; `neruba config check` explains each)"
        )
