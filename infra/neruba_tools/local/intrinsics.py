"""Reading template.yaml: a YAML loader for CloudFormation's short tags and an evaluator of intrinsics
(``Ref``, ``Fn::Sub``, ``Fn::GetAtt``, conditions ...) with the local account and region.

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
