"""Plan-version defaults: usage limits, entitlements and the invoice threshold set on a plan version, and
how a customer's own settings override them (plain Python; docs/limits.md, "Plan-version defaults").

A subscription whose phases use versions with defaults has a **defaults record** (JSON text): the
subscription's anchor and interval (the plan's billing periods), and per phase with defaults its span
``[from, until)``, the version and what it sets. It is kept on the customer's catalog item (``dal.limits``),
so the reads that already fetch the customer (the ingest worker's catalog lookup, an entitlement check,
a threshold evaluation) carry it at no extra request.

Precedence, at an instant ``at`` (the batch's processing time, the check's time):

- the phase of each subscription in force at ``at`` gives that subscription's defaults (none outside its
  phases, none once the subscription ended);
- per meter, the customer's own entry (``PUT /v1/customers/{id}/limits``) replaces the plan's entry
  whole; meters the customer does not list keep the plan's; the same per feature name;
- two subscriptions with defaults for one meter or feature: the subscription with the smaller id wins;
- limit periods: the customer's own period (anchor and interval) when it has settings of its own, else
  the billing periods of the first subscription (by id) with defaults in force;
- the invoice threshold of a subscription: the customer's ``invoice_threshold_minor`` when set, else the
  threshold of the subscription's phase in force;
- spend and balance alert levels (docs/limits.md, "Caps and alerts in amounts") are the customer's own:
  a plan version sets none.

Example:
    >>> from datetime import UTC, datetime
    >>> at = datetime(2026, 3, 5, tzinfo=UTC)
    >>> plan = LimitSettings(meters={"api_calls": MeterLimits(hard_cap=Decimal(10))})
    >>> record = subscription_record(datetime(2026, 3, 1, tzinfo=UTC), "month",
    ...     [PhaseDefaults(datetime(2026, 3, 1, tzinfo=UTC), None, "pro", 1, plan, 500)])
    >>> effective_settings(None, {"sub_1": record}, at).meters["api_calls"].hard_cap
    Decimal('10')
    >>> subscription_threshold(None, record, at), subscription_threshold(900, record, at)
    (500, 900)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal  # noqa: F401  (the doctest)
from typing import Any

from neruba.domain.limits import Feature, LimitSettings, MeterLimits


@dataclass(frozen=True, slots=True)
class PhaseDefaults:
    """What one phase's plan version sets, over the phase's span (``end`` None: open)."""

    start: datetime
    end: datetime | None
    plan_code: str
    plan_version: int
    limits: LimitSettings
    threshold_minor: int | None

    def holds(self, at: datetime) -> bool:
        return self.start <= at and (self.end is None or at < self.end)


def has_defaults(limits: LimitSettings, threshold_minor: int | None) -> bool:
    return bool(limits.meters or limits.features) or threshold_minor is not None


def subscription_record(anchor: datetime, interval: str, phases: Sequence[PhaseDefaults]) -> str:
    """The defaults record of a subscription (its billing periods, its phases with defaults)."""
    return json.dumps(
        {
            "anchor": _instant(anchor),
            "interval": interval,
            "phases": [
                {
                    "from": _instant(p.start),
                    "until": None if p.end is None else _instant(p.end),
                    "plan_code": p.plan_code,
                    "plan_version": p.plan_version,
                    "limits": json.loads(p.limits.stored()),
                    "threshold_minor": p.threshold_minor,
                }
                for p in phases
            ],
        },
        sort_keys=True,
    )


def phase_at(record: str | None, at: datetime) -> PhaseDefaults | None:
    """The phase of a defaults record in force at ``at``, its limits on the subscription's periods."""
    if not record:
        return None
    data: dict[str, Any] = json.loads(record)
    anchor = datetime.fromisoformat(data["anchor"])
    for phase in data.get("phases") or []:
        start = datetime.fromisoformat(phase["from"])
        end = datetime.fromisoformat(phase["until"]) if phase.get("until") else None
        limits = LimitSettings.from_stored(json.dumps(phase["limits"])) or LimitSettings()
        found = PhaseDefaults(
            start,
            end,
            str(phase["plan_code"]),
            int(phase["plan_version"]),
            replace(limits, anchor=anchor, interval=str(data["interval"])),
            None if phase.get("threshold_minor") is None else int(phase["threshold_minor"]),
        )
        if found.holds(at):
            return found
    return None


def effective_settings(own: str | None, plan: Mapping[str, str], at: datetime) -> LimitSettings | None:
    """The limits and entitlements that apply at ``at`` (see the module docstring); None: none at all."""
    mine = LimitSettings.from_stored(own)
    in_force = [p for _, text in sorted(plan.items()) if (p := phase_at(text, at)) is not None]
    in_force = [p for p in in_force if p.limits.meters or p.limits.features]
    if not in_force:
        return mine
    meters: dict[str, MeterLimits] = {}
    features: dict[str, Feature] = {}
    for phase in in_force:
        for code, limits in phase.limits.meters.items():
            meters.setdefault(code, limits)
        for name, feature in phase.limits.features.items():
            features.setdefault(name, feature)
    period = mine or in_force[0].limits
    if mine is None:
        return LimitSettings(period.anchor, period.interval, meters, features)
    meters.update(mine.meters)
    features.update(mine.features)
    # spend and balance alert levels are the customer's own (plan versions set none)
    return replace(mine, meters=meters, features=features)


def effective_text(own: str | None, plan: Mapping[str, str], at: datetime) -> str | None:
    """:func:`effective_settings` as the stored text the ingest gate reads (the customer's own text as
    is when no plan default is in force)."""
    if not plan:
        return own
    settings = effective_settings(own, plan, at)
    return None if settings is None else settings.stored()


def subscription_threshold(own: int | None, record: str | None, at: datetime) -> int | None:
    """A subscription's invoice threshold at ``at``: the customer's, else its phase's default."""
    if own is not None:
        return own
    phase = phase_at(record, at)
    return None if phase is None else phase.threshold_minor


def any_threshold(own: int | None, plan: Mapping[str, str], at: datetime) -> bool:
    """Whether some subscription of the customer has an invoice threshold at ``at``."""
    return own is not None or any(subscription_threshold(None, t, at) is not None for t in plan.values())


def _instant(value: datetime) -> str:
    return value.isoformat()
