"""Reading template.yaml: a YAML loader for CloudFormation's short tags and an evaluator of intrinsics.

Example:
    >>> template = load_template("template.yaml")  # doctest: +SKIP
    >>> intrinsics = Intrinsics(template, resolve=lambda ref, attr: ref)  # doctest: +SKIP
    >>> intrinsics.evaluate({"Fn::Sub": "x-${Stage}"})  # doctest: +SKIP
    'x-dev'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

_NO_VALUE = object()
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


class TemplateError(ValueError):
    """The template uses something the local stack cannot evaluate."""


class _Loader(yaml.SafeLoader):
    pass


def _short_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_Loader.add_multi_constructor("!", _short_tag)


def load_template(path: str | Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template with its short-form tags turned into long form."""
    return yaml.load(Path(path).read_text(), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def function_environment(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    """Globals.Function.Environment.Variables merged with the function's own (not yet evaluated)."""
    globals_env = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    own = template["Resources"][logical_id].get("Properties", {}).get("Environment", {}).get("Variables", {})
    return {**globals_env, **own}


def resources_of(template: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r.get("Type") == kind}


class Intrinsics:
    """Evaluates Ref, GetAtt, Sub, If, Equals, Not, And, Or, Join, Select, Split against local values."""

    def __init__(
        self,
        template: Mapping[str, Any],
        resolve: Callable[[str, str | None], Any],
        parameters: Mapping[str, Any] | None = None,
        stack_name: str = "neruba-local",
    ) -> None:
        self.template = template
        self.resolve = resolve
        self.parameters = {name: spec.get("Default") for name, spec in template.get("Parameters", {}).items()}
        self.parameters.update(parameters or {})
        self.pseudo = {
            "AWS::StackName": stack_name,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": _NO_VALUE,
        }
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.evaluate(self.template.get("Conditions", {})[name]))
        return self._conditions[name]

    def evaluate(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (self.evaluate(item) for item in value) if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            handler = getattr(self, "_" + key.replace("Fn::", "fn_").replace("::", "_"), None)
            if key in ("Ref", "Condition") or key.startswith("Fn::"):
                if handler is None:
                    raise TemplateError(f"{key} is not supported locally")
                return handler(arg)
        return {k: v for k, v in ((k, self.evaluate(v)) for k, v in value.items()) if v is not _NO_VALUE}

    def _Ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.resolve(name, None)

    def _Condition(self, name: str) -> bool:
        return self.condition(name)

    def _fn_GetAtt(self, arg: list[str]) -> Any:
        return self.resolve(arg[0], arg[1])

    def _fn_Sub(self, arg: str | list[Any]) -> str:
        text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.evaluate(arg[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in extra:
                return str(extra[name])
            if "." in name and name.split(".", 1)[0] in self.template["Resources"]:
                return str(self.resolve(*name.split(".", 1)))
            return str(self._Ref(name))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    def _fn_If(self, arg: list[Any]) -> Any:
        return self.evaluate(arg[1] if self.condition(arg[0]) else arg[2])

    def _fn_Equals(self, arg: list[Any]) -> bool:
        left, right = (self.evaluate(a) for a in arg)
        return str(left) == str(right)

    def _fn_Not(self, arg: list[Any]) -> bool:
        return not self.evaluate(arg[0])

    def _fn_And(self, arg: list[Any]) -> bool:
        return all(self.evaluate(a) for a in arg)

    def _fn_Or(self, arg: list[Any]) -> bool:
        return any(self.evaluate(a) for a in arg)

    def _fn_Join(self, arg: list[Any]) -> str:
        return str(arg[0]).join(str(v) for v in self.evaluate(arg[1]))

    def _fn_Select(self, arg: list[Any]) -> Any:
        return self.evaluate(arg[1])[int(self.evaluate(arg[0]))]

    def _fn_Split(self, arg: list[Any]) -> list[str]:
        return str(self.evaluate(arg[1])).split(str(arg[0]))
