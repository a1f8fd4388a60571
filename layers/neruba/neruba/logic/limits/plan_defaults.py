"""Keeping a subscription's plan-version defaults on its customer's record (``domain.plan_defaults``).

A plan version may set default usage limits, entitlements and an invoice threshold (``defaults`` in its
create body, checked by ``logic.limits.settings.validated_defaults``). Plan versions never change, so a
subscription's defaults change only with its phases: each transaction that creates a subscription, changes
its plan or cancels it carries the action writing its defaults record on the customer's catalog item
(``dal.limits``), where the ingest worker's customer lookup, an entitlement check and a threshold
evaluation already read it. Subscriptions written before defaults existed have no record until their next
change (no version had defaults then).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from neruba.domain.limits import Feature, LimitSettings, MeterLimits
from neruba.domain.phases import Timeline, subscription_end
from neruba.domain.plan_defaults import PhaseDefaults, has_defaults, subscription_record
from neruba.timefmt import parse_ts

if TYPE_CHECKING:
    from neruba.dal.plans import PlansRepository


def defaults_items(
    repo: PlansRepository,
    sub: Mapping[str, Any],
    *,
    created: bool = False,
    before_phases: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """The action writing ``sub``'s defaults record on its customer (removing it when its phases have
    none), for the subscription's own transaction; nothing when no record is written or could be stored:
    a new subscription without defaults, or a change (``before_phases``: the phases before it) of a
    subscription none of whose plan versions, before or after, sets defaults."""
    from neruba import bootstrap

    versions: dict[tuple[str, int], Mapping[str, Any]] = {}  # each version read once per call
    record = defaults_record(repo, sub, versions)
    if record is None:
        if created:
            return []
        for phase in before_phases:
            _defaults(repo, phase, versions)
        if not any(_set(defaults) for defaults in versions.values()):
            return []
    return [bootstrap.limits().plan_defaults_item(str(sub["customer_id"]), str(sub["id"]), record)]


def defaults_record(
    repo: PlansRepository,
    sub: Mapping[str, Any],
    versions: dict[tuple[str, int], Mapping[str, Any]] | None = None,
) -> str | None:
    """The defaults record of a subscription (one read per phase's plan version, once each in
    ``versions``), None without any."""
    terms = Timeline.of(sub)
    ends = subscription_end(sub)
    seen = {} if versions is None else versions
    phases = []
    for phase in sub.get("phases") or []:
        defaults = _defaults(repo, phase, seen)
        limits = limits_of(defaults)
        threshold = defaults.get("invoice_threshold_minor")
        if not has_defaults(limits, threshold):
            continue
        start = parse_ts(phase["start_at"])
        end = parse_ts(phase["end_at"]) if phase.get("end_at") else None
        if ends is not None and (end is None or ends < end):
            end = ends
        if end is not None and end <= start:
            continue
        phases.append(PhaseDefaults(start, end, str(phase["plan_code"]), int(phase["plan_version"]),
                                    limits, _int(threshold)))  # fmt: skip
    return subscription_record(terms.anchor, terms.every, phases) if phases else None


def _defaults(
    repo: PlansRepository, phase: Mapping[str, Any], versions: dict[tuple[str, int], Mapping[str, Any]]
) -> Mapping[str, Any]:
    """The ``defaults`` of a phase's plan version (read once per ``versions``)."""
    key = (str(phase["plan_code"]), int(phase["plan_version"]))
    if key not in versions:
        versions[key] = repo.version(*key).document.get("defaults") or {}
    return versions[key]


def _set(defaults: Mapping[str, Any]) -> bool:
    return has_defaults(limits_of(defaults), _int(defaults.get("invoice_threshold_minor")))


def limits_of(defaults: Mapping[str, Any]) -> LimitSettings:
    """A stored version's ``defaults`` (as its body was accepted) as limit settings."""
    meters = {
        str(m["meter_code"]): MeterLimits(
            _number(m.get("hard_cap")),
            _number(m.get("soft_cap")),
            tuple(sorted(Decimal(str(a)) for a in m.get("alerts") or ())),
        )
        for m in defaults.get("meters") or ()
    }
    features = {
        str(f["feature"]): Feature(
            str(f["kind"]),
            bool(f.get("enabled", True)),
            f.get("value"),
            f.get("meter_code"),
            _number(f.get("limit")),
        )
        for f in defaults.get("features") or ()
    }
    return LimitSettings(meters=meters, features=features)


def _number(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
