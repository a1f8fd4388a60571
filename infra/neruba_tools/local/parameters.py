"""A ``--parameter NAME=VALUE`` checked against the template's own definition of NAME, as CloudFormation
checks ``--parameter-overrides``: ``Type`` (``Number``: every Number parameter of template.yaml is a count,
so a whole number), ``AllowedValues``, ``MinValue``/``MaxValue``, ``AllowedPattern``,
``MinLength``/``MaxLength``. The answer is one sentence naming the parameter and the rule.

Example:
    >>> parameter_problem("Stage", {"Type": "String", "AllowedValues": ["dev", "prod"]}, "qa")
    "Stage must be one of dev, prod, got 'qa'"
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


def parameter_problem(name: str, definition: Mapping[str, Any], value: str) -> str | None:
    """Why ``value`` is not allowed for the parameter ``name``, or None when it is."""
    allowed = definition.get("AllowedValues")
    if allowed is not None and value not in [str(v) for v in allowed]:
        return f"{name} must be one of {', '.join(str(v) for v in allowed)}, got {value!r}"
    if definition.get("Type") == "Number":
        return _number_problem(name, definition, value)
    pattern = definition.get("AllowedPattern")
    if pattern is not None and not re.fullmatch(str(pattern), value):
        return f"{name} must match the pattern {pattern}, got {value!r}"
    low, high = definition.get("MinLength"), definition.get("MaxLength")
    if low is not None and len(value) < int(low):
        return f"{name} must be at least {low} characters long, got {value!r}"
    if high is not None and len(value) > int(high):
        return f"{name} must be at most {high} characters long, got {value!r}"
    return None


def _number_problem(name: str, definition: Mapping[str, Any], value: str) -> str | None:
    if not re.fullmatch(r"-?[0-9]+", value.strip()):
        return f"{name} must be a whole number, got {value!r}"
    number = int(value)
    low, high = definition.get("MinValue"), definition.get("MaxValue")
    if low is not None and number < int(low):
        return f"{name} must be at least {low}, got {value!r}"
    if high is not None and number > int(high):
        return f"{name} must be at most {high}, got {value!r}"
    return None
