"""The prices the limits rate a customer's usage with (amount caps and spend alerts), and the check that a
setting in amounts can be enforced exactly (docs/limits.md, "Caps and alerts in amounts").

A meter's price at an instant is the charge of that meter in the plan version of the customer's
subscription phase in force then. Plan versions never change once published, so they are kept per process;
subscriptions are read again for every write that needs them (a plan change applies to the next batch).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from neruba.domain.limit_amounts import Price, unsupported
from neruba.domain.phases import phase_at
from neruba.errors import InvalidRequestError
from neruba.observability import logger

_VERSIONS: dict[tuple[str, int], Mapping[str, Any]] = {}  # published versions never change


def _version(code: str, number: int) -> Mapping[str, Any]:
    from neruba import bootstrap

    key = (code, number)
    if key not in _VERSIONS:
        _VERSIONS[key] = bootstrap.plans().version(code, number).document
    return _VERSIONS[key]


def _charge(version: Mapping[str, Any], meter_code: str) -> Mapping[str, Any] | None:
    return next((c for c in version.get("charges") or [] if c.get("meter_code") == meter_code), None)


class Prices:
    """The price of one customer's meter at any instant, read on first use (one query of the customer's
    subscriptions and one read of the meter, then the plan versions from the process's cache)."""

    def __init__(self, customer_id: str, meter_code: str) -> None:
        self.customer_id = customer_id
        self.meter_code = meter_code
        self._subscriptions: list[Any] | None = None
        self._group_by: list[str] = []
        self._priced: dict[tuple[str, int], Price | None] = {}  # plan version -> its price of the meter

    def _load(self) -> list[Any]:
        if self._subscriptions is None:
            from neruba import bootstrap

            meter = bootstrap.catalog().get_meter(self.meter_code)
            self._group_by = list(meter.group_by or []) if meter is not None else []
            self._subscriptions = bootstrap.plans().customer_subscriptions(self.customer_id)
        return self._subscriptions

    def at(self, at: datetime) -> Price | None:
        """The price in force at ``at``; None when no subscription charges the meter then, or when its
        charge cannot be rated from the running total (a plan changed after the limits were set)."""
        for subscription in self._load():
            found = phase_at(subscription.timeline, at)
            if found is None:
                continue
            _, phase = found
            version = _version(phase.plan_code, phase.plan_version)
            charge = _charge(version, self.meter_code)
            if charge is None:
                continue
            return self._price((phase.plan_code, phase.plan_version), charge, str(version["currency"]))
        return None

    def _price(self, key: tuple[str, int], charge: Mapping[str, Any], currency: str) -> Price | None:
        if key not in self._priced:
            why = unsupported(charge, self._group_by)
            if why is not None:  # said once per write, not per event
                logger.warning(
                    "meter amount not rated",
                    extra={"customer_id": self.customer_id, "meter_code": self.meter_code, "why": why},
                )
            self._priced[key] = None if why is not None else Price(charge, currency)
        return self._priced[key]


def check_rateable(customer_id: str, meter_codes: set[str] | None, param: str) -> None:
    """400 ``amount_limit_unsupported`` when a charge of the customer's subscriptions (any phase) on one
    of ``meter_codes`` (None: every meter) cannot be rated exactly from the meter's running total."""
    from neruba import bootstrap
    from neruba.domain.limits import CAPPABLE

    for subscription in bootstrap.plans().customer_subscriptions(customer_id):
        for phase in subscription.timeline.phases:
            version = _version(phase.plan_code, phase.plan_version)
            for charge in version.get("charges") or []:
                code = str(charge.get("meter_code"))
                if meter_codes is not None and code not in meter_codes:
                    continue
                meter = bootstrap.catalog().get_meter(code)
                why = None
                if meter is not None and meter.aggregation not in CAPPABLE:
                    why = f"its meter aggregates by {meter.aggregation}, which events cannot be added up to"
                why = why or unsupported(charge, list(meter.group_by or []) if meter is not None else [])
                if why is not None:
                    raise InvalidRequestError(
                        f"Plan {phase.plan_code!r} version {phase.plan_version} charges meter {code!r} with "
                        f"a price limits cannot rate exactly per event: {why}.",
                        code="amount_limit_unsupported",
                        param=param,
                    )
