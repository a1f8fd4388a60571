"""Every decimal a request model takes counts its size as written (``models.fields.AsWritten``): no decimal
field is left with pydantic's own count, which drops trailing zeros before counting decimal places (a hard
cap ``"1.0000000"`` passed a 6-place rule; docs/api.md, "Decimal places are counted as written")."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing
from decimal import Decimal
from typing import Any

import pytest
from pydantic import AfterValidator, BaseModel

import neruba.models
from neruba.models.fields import AsWritten

# Decimals with no documented maximum of places: an event's property values (docs/limits.md, "Numbers").
UNBOUNDED = {("UsageEventIn", "properties"), ("EventAmendIn", "properties")}


def _decimal_types(annotation: Any, metadata: list[Any]) -> list[list[Any]]:
    """The metadata of each ``Decimal`` reachable in an annotation (lists, unions, dicts, Annotated)."""
    if annotation is Decimal:
        return [metadata]
    if typing.get_origin(annotation) is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        return _decimal_types(inner, [*metadata, *extra])
    found = []
    for arg in typing.get_args(annotation):
        found.extend(_decimal_types(arg, []))
    return found


def _models() -> list[type[BaseModel]]:
    models = []
    for info in pkgutil.iter_modules(neruba.models.__path__):
        module = importlib.import_module(f"neruba.models.{info.name}")
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseModel) and value.__module__ == module.__name__:
                models.append(value)
    return models


def test_every_decimal_field_of_a_model_counts_its_places_as_written() -> None:
    checked, missing = 0, []
    for model in _models():
        for name, info in model.model_fields.items():
            if (model.__name__, name) in UNBOUNDED:
                continue
            for metadata in _decimal_types(info.annotation, list(info.metadata)):
                checked += 1
                rules = [m.func for m in metadata if isinstance(m, AfterValidator)]
                if not any(isinstance(rule, AsWritten) for rule in rules):
                    missing.append(f"{model.__name__}.{name}")
                if any(
                    getattr(m, "decimal_places", None) or getattr(m, "max_digits", None) for m in metadata
                ):
                    missing.append(f"{model.__name__}.{name} (pydantic's own count)")
    assert missing == []
    assert checked >= 20  # prices, quantities, rates, percentages, caps, levels, grants


def test_trailing_zeros_count_and_leading_zeros_do_not() -> None:
    rule = AsWritten(digits=30, places=6)
    assert rule(Decimal("0001.500000")) == Decimal("1.5")
    for text in ("1.0000000", "0.0000000", "1." + "0" * 40):
        with pytest.raises(ValueError, match="decimal places"):
            rule(Decimal(text))
