"""Catalog resources as the API and the repositories see them: customers and meters.

Example:
    >>> Meter(code="api_calls", name="API calls", aggregation="count").field is None
    True
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from neruba.domain.money import is_supported_currency

Aggregation = Literal["count", "sum", "max", "unique_count", "latest"]
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
EXTERNAL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"
_PROPERTY_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class Customer(BaseModel):
    """A customer of the operator, named by the operator's own ``external_id``."""

    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(pattern=EXTERNAL_ID_PATTERN)
    name: str = Field(min_length=1, max_length=256)
    email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    currency: str = Field(min_length=3, max_length=3)
    timezone: str = Field(default="UTC", max_length=64)
    stripe_customer_id: str | None = Field(default=None, max_length=255)
    metadata: dict[str, str] = Field(default_factory=dict, max_length=50)
    created_at: datetime | None = None

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        value = value.upper()
        if not is_supported_currency(value):
            raise ValueError(f"unsupported currency {value!r}")
        return value


class Meter(BaseModel):
    """What to measure from events with a given ``code`` and how to aggregate it per period."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=1, max_length=256)
    aggregation: Aggregation
    field: str | None = Field(default=None, description="The property aggregated (all but count).")
    filters: dict[str, str] = Field(default_factory=dict, max_length=10)
    group_by: list[str] = Field(default_factory=list, max_length=3)
    created_at: datetime | None = None

    @model_validator(mode="after")
    def _field_matches_aggregation(self) -> Meter:
        if self.aggregation == "count" and self.field is not None:
            raise ValueError("a count meter takes no field")
        if self.aggregation != "count" and not self.field:
            raise ValueError(f"a {self.aggregation} meter needs a field")
        for name in [*((self.field and [self.field]) or []), *self.filters, *self.group_by]:
            if not _PROPERTY_NAME.match(name):
                raise ValueError(f"invalid property name {name!r}")
        return self
