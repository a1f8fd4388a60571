"""Reading template.yaml: a YAML loader for CloudFormation's short tags, an evaluator of intrinsics, and
``Template``, which lists what the local stack needs: tables, queues, functions (with SAM Globals merged),
their Api/SQS/Schedule events, the API's authorizers and its gateway responses.

Example:
    >>> doc = yaml.load("A: !Sub 'x-${Stage}'", Loader=TemplateLoader)
    >>> Intrinsics({"Parameters": {"Stage": {"Default": "dev"}}}).evaluate(doc["A"])
    'x-dev'
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
SHORT_TAGS = (
    "Ref", "Condition", "GetAtt", "Sub", "If", "Equals", "Not", "And", "Or", "Join", "Select", "Split",
    "FindInMap", "ImportValue", "Base64", "GetAZs", "Cidr", "Length", "ToJsonString", "Transform",
)  # fmt: skip


class TemplateError(ValueError):
    """The template uses something the local stack cannot evaluate."""


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Any = _NoValue()


class TemplateLoader(yaml.SafeLoader):  # type: ignore[misc]  # no stubs for PyYAML here
    """SafeLoader + CloudFormation short tags; dates stay strings (``2010-09-09``)."""

    yaml_implicit_resolvers = {
        key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def _short_tag(name: str) -> Callable[[yaml.SafeLoader, yaml.Node], dict[str, Any]]:
    key = name if name in ("Ref", "Condition") else f"Fn::{name}"

    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {key: value}

    return construct


for _tag in SHORT_TAGS:
    TemplateLoader.add_constructor(f"!{_tag}", _short_tag(_tag))


def load_template(path: str | Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template, short-form tags turned into their long form."""
    document = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=TemplateLoader)  # noqa: S506
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources)")
    return document


def resources_of(template: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """Every resource of type ``kind`` (conditions not applied; see ``Template.resources``)."""
    return {name: r for name, r in template["Resources"].items() if r.get("Type") == kind}


def as_text(value: Any) -> str:
    """A scalar as CloudFormation writes it into strings: ``true``/``false``, ``60``, text as is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else str(value)


def _no_resource(logical_id: str, attribute: str | None) -> Any:
    raise TemplateError(f"no resolver for resource {logical_id}" + (f".{attribute}" if attribute else ""))


class Intrinsics:
    """Evaluates intrinsic functions against parameters, conditions, pseudo parameters and resources.

    ``resolve(logical_id, attribute)`` answers ``Ref`` (attribute None) and ``Fn::GetAtt`` of resources.
    Parameters are strings, as in CloudFormation (list types are lists); ``AWS::NoValue`` drops the key or
    list item that holds it.

    Example:
        >>> Intrinsics({"Parameters": {"P": {"Default": "a"}}}, parameters={"P": "b"}).evaluate({"Ref": "P"})
        'b'
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        resolve: Callable[[str, str | None], Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
        stack_name: str = "neruba-local",
        imports: Mapping[str, Any] | None = None,
    ) -> None:
        self.template = template
        self.resolve = resolve or _no_resource
        self.imports = dict(imports or {})
        self.parameters: dict[str, Any] = {}
        specs = template.get("Parameters") or {}
        given = dict(parameters or {})
        for name, spec in specs.items():
            if name in given or "Default" in spec:
                value = given.pop(name, spec.get("Default"))
                if str(spec.get("Type", "")).startswith(("List<", "CommaDelimitedList")):
                    items = value if isinstance(value, list) else as_text(value).split(",")
                    self.parameters[name] = [as_text(item).strip() for item in items]
                else:
                    self.parameters[name] = as_text(value)
        self.parameters.update({k: as_text(v) for k, v in given.items()})
        self.pseudo = {
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{stack_name}/local",
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }
        self._conditions: dict[str, bool | None] = {}
        self._functions: dict[str, Callable[[Any], Any]] = {
            "Ref": self._ref, "Condition": self.condition, "Fn::GetAtt": self._get_att, "Fn::Sub": self._sub,
            "Fn::If": self._if, "Fn::Equals": self._equals, "Fn::Not": lambda a: not self._eval(a[0]),
            "Fn::And": lambda a: all(self._eval(c) for c in a),
            "Fn::Or": lambda a: any(self._eval(c) for c in a),
            "Fn::Join": self._join, "Fn::Select": self._select, "Fn::Split": self._split,
            "Fn::FindInMap": self._find_in_map, "Fn::ImportValue": self._import_value,
            "Fn::Base64": lambda a: base64.b64encode(as_text(self._eval(a)).encode()).decode(),
            "Fn::GetAZs": lambda a: [f"{REGION}{zone}" for zone in "abcdef"],
            "Fn::Length": lambda a: len(self._eval(a)), "Fn::ToJsonString": lambda a: as_text(self._eval(a)),
        }  # fmt: skip

    def evaluate(self, value: Any) -> Any:
        """``value`` with every intrinsic function replaced by its local value (NoValue -> None)."""
        result = self._eval(value)
        return None if result is NO_VALUE else result

    def condition(self, name: str) -> bool:
        """The value of the template's condition ``name``."""
        if name not in self._conditions:
            conditions = self.template.get("Conditions") or {}
            if name not in conditions:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = None  # in progress: a cycle is an error
            self._conditions[name] = bool(self._eval(conditions[name]))
        value = self._conditions[name]
        if value is None:
            raise TemplateError(f"condition {name} depends on itself")
        return value

    def _eval(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self._eval(v) for v in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if (key in ("Ref", "Condition") and isinstance(arg, str)) or key.startswith("Fn::"):
                if key not in self._functions:
                    raise TemplateError(f"{key} is not supported by the local stack")
                return self._functions[key](arg)
        return {k: v for k, v in ((k, self._eval(v)) for k, v in value.items()) if v is not NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in (self.template.get("Parameters") or {}):
            raise TemplateError(f"parameter {name} has no default and no value was given")
        if name not in self.template.get("Resources", {}):
            raise TemplateError(f"Ref to unknown name {name}")
        return self.resolve(name, None)

    def _get_att(self, arg: Any) -> Any:
        logical_id, attribute = (self._eval(a) for a in (arg.split(".", 1) if isinstance(arg, str) else arg))
        if logical_id not in self.template.get("Resources", {}):
            raise TemplateError(f"GetAtt of unknown resource {logical_id}")
        return self.resolve(logical_id, attribute)

    def _sub(self, arg: Any) -> str:
        text, names = (arg, {}) if isinstance(arg, str) else (arg[0], self._eval(arg[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(2).strip()
            if match.group(1):
                return "${" + match.group(2) + "}"
            if name in names:
                return as_text(names[name])
            head, _, attribute = name.partition(".")
            if attribute and head in self.template.get("Resources", {}):
                return as_text(self.resolve(head, attribute))
            return as_text(self._ref(name))

        return re.sub(r"\$\{(!?)([^}]*)\}", replace, text)

    def _if(self, arg: list[Any]) -> Any:
        return self._eval(arg[1] if self.condition(arg[0]) else arg[2])

    def _equals(self, arg: list[Any]) -> bool:
        left, right = (self._eval(a) for a in arg)
        if isinstance(left, list) and isinstance(right, list):
            return [as_text(v) for v in left] == [as_text(v) for v in right]
        return as_text(left) == as_text(right)

    def _join(self, arg: list[Any]) -> str:
        items = self._eval(arg[1])
        if not isinstance(items, list):
            raise TemplateError(f"Fn::Join needs a list, got {items!r}")
        return as_text(self._eval(arg[0])).join(as_text(v) for v in items)

    def _select(self, arg: list[Any]) -> Any:
        items = self._eval(arg[1])
        return items[int(self._eval(arg[0]))]

    def _split(self, arg: list[Any]) -> list[str]:
        return as_text(self._eval(arg[1])).split(as_text(self._eval(arg[0])))

    def _find_in_map(self, arg: list[Any]) -> Any:
        name, top, second = (as_text(self._eval(a)) for a in arg[:3])
        try:
            return self.template["Mappings"][name][top][second]
        except KeyError:
            if len(arg) > 3 and isinstance(arg[3], dict) and "DefaultValue" in arg[3]:
                return self._eval(arg[3]["DefaultValue"])
            raise TemplateError(f"Fn::FindInMap: no {name}.{top}.{second}") from None

    def _import_value(self, arg: Any) -> Any:
        name = as_text(self._eval(arg))
        if name not in self.imports:
            raise TemplateError(f"Fn::ImportValue {name}: no other stacks run locally; pass imports=")
        return self.imports[name]


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
