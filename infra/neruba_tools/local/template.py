"""``Template``: what the local stack needs from template.yaml: tables, queues, functions (with SAM Globals
merged), their Api/SQS/Schedule events, the API's authorizers and its gateway responses.

Example:
    >>> Template(load_template("template.yaml")).functions()["IngestApiFunction"].code_uri  # doctest: +SKIP
    'functions/ingest_api/'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from neruba_tools.local.intrinsics import Intrinsics, TemplateError, as_text, resources_of

# ---------------------------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class FunctionSpec:
    """An AWS::Serverless::Function; ``properties`` are Globals.Function merged with its own (raw)."""

    logical_id: str
    code_uri: str
    handler: str
    memory_size: int
    timeout: int
    properties: dict[str, Any] = field(repr=False)

    @property
    def reserved_concurrency(self) -> int | None:
        """``ReservedConcurrentExecutions`` when set to a number, else None."""
        value = self.properties.get("ReservedConcurrentExecutions")
        return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


@dataclass(frozen=True)
class ApiRoute:
    """An Api event; ``authorizer`` is the authorizer's name, None for ``Authorizer: NONE``."""

    function: str
    event: str
    method: str
    path: str
    api: str | None
    authorizer: str | None


@dataclass(frozen=True)
class SqsSource:
    """An SQS event: ``queue`` is the queue's logical id."""

    function: str
    event: str
    queue: str
    batch_size: int
    window: float
    report_failures: bool
    enabled: bool
    maximum_concurrency: int | None = None  # ScalingConfig.MaximumConcurrency


@dataclass(frozen=True)
class ScheduleSpec:
    """A Schedule (or ScheduleV2) event; ``input`` is the constant JSON input, if any."""

    function: str
    event: str
    expression: str
    enabled: bool
    input: str | None
    rule_name: str


@dataclass(frozen=True)
class AuthorizerSpec:
    """A Lambda authorizer of an Api's Auth.Authorizers (TOKEN type)."""

    name: str
    function: str
    header: str
    ttl: int
    validation: str | None = None


@dataclass(frozen=True)
class GatewayResponseSpec:
    """A gateway response: status (None = the type's default), body templates by type, extra headers."""

    response_type: str
    status_code: int | None
    templates: dict[str, str]
    headers: dict[str, str]


def ref_target(value: Any, what: str) -> str:
    """The logical id that a ``Ref`` or ``Fn::GetAtt`` points at.

    Example:
        >>> ref_target({"Fn::GetAtt": ["IngestQueue", "Arn"]}, "Queue")
        'IngestQueue'
    """
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref" and isinstance(arg, str):
            return arg
        if key == "Fn::GetAtt":
            return str((arg.split(".", 1) if isinstance(arg, str) else arg)[0])
    raise TemplateError(f"{what}: expected !Ref or !GetAtt of a resource of this template, got {value!r}")


def _is_intrinsic(value: Any) -> bool:
    key = str(next(iter(value))) if isinstance(value, dict) and len(value) == 1 else ""
    return key in ("Ref", "Condition") or key.startswith("Fn::")


def merge_globals(base: Any, own: Any) -> Any:
    """SAM Globals semantics: maps merge, lists add up (globals first), the resource's scalars win."""
    if isinstance(base, dict) and isinstance(own, dict) and not (_is_intrinsic(base) or _is_intrinsic(own)):
        return {**base, **{k: merge_globals(base[k], v) if k in base else v for k, v in own.items()}}
    if isinstance(base, list) and isinstance(own, list):
        return [*base, *own]
    return own


def _enabled(props: Mapping[str, Any]) -> bool:
    return (
        as_text(props.get("Enabled", True)) == "true" and as_text(props.get("State", "ENABLED")) == "ENABLED"
    )


class Template:
    """A template document and its evaluator, listing what the local stack emulates.

    Example:
        >>> t = Template({"Resources": {"T": {"Type": "AWS::DynamoDB::Table", "Properties": {}}}})
        >>> list(t.tables())
        ['T']
    """

    def __init__(self, document: Mapping[str, Any], intrinsics: Intrinsics | None = None) -> None:
        self.document = document
        self.intrinsics = intrinsics or Intrinsics(document)

    def evaluate(self, value: Any) -> Any:
        return self.intrinsics.evaluate(value)

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        """Resources of type ``kind`` whose Condition (if any) holds."""
        return {
            name: resource
            for name, resource in resources_of(self.document, kind).items()
            if "Condition" not in resource or self.intrinsics.condition(resource["Condition"])
        }

    def _globals(self, section: str) -> dict[str, Any]:
        return dict((self.document.get("Globals") or {}).get(section) or {})

    def tables(self) -> dict[str, dict[str, Any]]:
        """Logical id -> evaluated Properties of every AWS::DynamoDB::Table."""
        return {
            n: self.evaluate(r.get("Properties") or {})
            for n, r in self.resources("AWS::DynamoDB::Table").items()
        }

    def queues(self) -> dict[str, dict[str, Any]]:
        """Logical id -> evaluated Properties of every AWS::SQS::Queue."""
        return {
            n: self.evaluate(r.get("Properties") or {}) for n, r in self.resources("AWS::SQS::Queue").items()
        }

    def functions(self) -> dict[str, FunctionSpec]:
        """Every AWS::Serverless::Function with Globals.Function merged in."""
        functions = {}
        for logical_id, resource in self.resources("AWS::Serverless::Function").items():
            props = merge_globals(self._globals("Function"), resource.get("Properties") or {})
            functions[logical_id] = FunctionSpec(
                logical_id,
                as_text(self.evaluate(props.get("CodeUri", "."))),
                as_text(self.evaluate(props.get("Handler", ""))),
                int(self.evaluate(props.get("MemorySize", 128))),
                int(self.evaluate(props.get("Timeout", 3))),
                props,
            )
        return functions

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """Globals.Function.Environment.Variables merged with the function's own, evaluated, as text."""
        props = self.functions()[logical_id].properties
        variables = self.evaluate((props.get("Environment") or {}).get("Variables") or {})
        return {name: as_text(value) for name, value in variables.items()}

    def _events(self, *kinds: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [
            (logical_id, name, event.get("Properties") or {})
            for logical_id, spec in self.functions().items()
            for name, event in (spec.properties.get("Events") or {}).items()
            if event.get("Type") in kinds
        ]

    def api_routes(self) -> list[ApiRoute]:
        """Every Api event, its authorizer resolved (the route's own, else the Api's default)."""
        routes = []
        for function, event, props in self._events("Api"):
            api = (
                ref_target(props["RestApiId"], f"{function}.{event}.RestApiId")
                if "RestApiId" in props
                else None
            )
            name = (props.get("Auth") or {}).get("Authorizer") or self.api_auth(api).get("DefaultAuthorizer")
            authorizer = None if name in (None, "NONE", "AWS_IAM") else as_text(name)
            method = as_text(self.evaluate(props["Method"])).upper()
            routes.append(
                ApiRoute(function, event, method, as_text(self.evaluate(props["Path"])), api, authorizer)
            )
        return routes

    def sqs_sources(self) -> list[SqsSource]:
        """Every SQS event (event source mapping)."""
        sources = []
        for function, event, raw in self._events("SQS"):
            queue = ref_target(raw["Queue"], f"{function}.{event}.Queue")
            props = self.evaluate({k: v for k, v in raw.items() if k != "Queue"})
            sources.append(
                SqsSource(
                    function, event, queue, int(props.get("BatchSize", 10)),
                    float(props.get("MaximumBatchingWindowInSeconds", 0)),
                    "ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []), _enabled(props),
                    _maximum_concurrency(props),
                )
            )  # fmt: skip
        return sources

    def schedules(self) -> list[ScheduleSpec]:
        """Every Schedule / ScheduleV2 event."""
        specs = []
        stack = self.intrinsics.pseudo["AWS::StackName"]
        for function, event, raw in self._events("Schedule", "ScheduleV2"):
            props = self.evaluate(raw)
            expression = as_text(props.get("Schedule") or props.get("ScheduleExpression"))
            given = props.get("Input")
            rule = as_text(props.get("Name") or f"{stack}-{function}{event}")
            specs.append(
                ScheduleSpec(function, event, expression, _enabled(props), given and as_text(given), rule)
            )
        return specs

    def api_auth(self, api: str | None) -> dict[str, Any]:
        """The Auth section of Api ``api`` (None: the implicit API), Globals.Api merged in."""
        own: dict[str, Any] = {}
        if api is not None:
            resource = self.document["Resources"].get(api) or {}
            if resource.get("Type") == "AWS::Serverless::Api":
                own = resource.get("Properties") or {}
        return dict(merge_globals(self._globals("Api"), own).get("Auth") or {})

    def authorizers(self, api: str | None) -> dict[str, AuthorizerSpec]:
        """Name -> Lambda authorizer of Api ``api``."""
        found = {}
        for name, spec in (self.api_auth(api).get("Authorizers") or {}).items():
            if "FunctionArn" not in spec:
                continue  # Cognito / IAM authorizers are not emulated
            identity = self.evaluate(spec.get("Identity") or {})
            found[name] = AuthorizerSpec(
                name,
                ref_target(spec["FunctionArn"], f"authorizer {name}"),
                as_text(identity.get("Header", "Authorization")),
                int(identity.get("ReauthorizeEvery", 300)),
                identity.get("ValidationExpression"),
            )
        return found

    def gateway_responses(self, api: str | None = None) -> dict[str, GatewayResponseSpec]:
        """Response type -> AWS::ApiGateway::GatewayResponse of Api ``api`` (None: of any)."""
        found: dict[str, GatewayResponseSpec] = {}
        for resource in self.resources("AWS::ApiGateway::GatewayResponse").values():
            raw = resource.get("Properties") or {}
            if api is not None and "RestApiId" in raw and ref_target(raw["RestApiId"], "RestApiId") != api:
                continue
            props = self.evaluate(raw)
            headers = {
                key.split(".", 2)[2]: as_text(value).strip("'")
                for key, value in (props.get("ResponseParameters") or {}).items()
                if key.startswith("gatewayresponse.header.")
            }
            status = props.get("StatusCode")
            kind = as_text(props["ResponseType"])
            found[kind] = GatewayResponseSpec(
                kind, status and int(status), props.get("ResponseTemplates") or {}, headers
            )
        return found


def _maximum_concurrency(props: dict[str, Any]) -> int | None:
    """An SQS event's ``ScalingConfig.MaximumConcurrency``, None when unset."""
    value = (props.get("ScalingConfig") or {}).get("MaximumConcurrency")
    return int(value) if value is not None and str(value).isdigit() else None
