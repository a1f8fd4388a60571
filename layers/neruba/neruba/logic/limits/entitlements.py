"""Entitlement checks: may a customer use a feature now, with its usage, limit, remaining and reset time.

A check costs at most two DynamoDB reads: the customer's limit settings (one GetItem of its catalog item,
where its features and its plan versions' defaults are kept, ``domain.plan_defaults``) and, for metered
features, their period counters (one GetItem for one feature, one BatchGetItem for the list). A metered
feature's usage is the counter the ingest worker keeps for its meter (written only while a metered feature
or a limit names the meter); access is granted while the usage is below the limit, which grants in force
raise (``logic.limits.grants``; kept with the settings, so read with them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from neruba import bootstrap
from neruba.dal.limits import Counter, StoredLimits
from neruba.domain.entitlement_grants import Grant, granted, parse
from neruba.domain.limits import Feature, LimitSettings
from neruba.domain.numbers import canonical_text, exact_difference, exact_sum
from neruba.domain.plan_defaults import effective_settings
from neruba.errors import NotFoundError
from neruba.timefmt import iso_z


def entitlements(customer_id: str, now: datetime | None = None) -> dict[str, Any]:
    """Every feature of the customer (two reads at most)."""
    now = now or datetime.now(UTC)
    record, settings = settings_at(customer_id, now)
    grants = parse(record.grants)
    metered = {name: f for name, f in settings.features.items() if f.kind == "metered" and f.meter_code}
    start, end = settings.period(now)
    wanted = sorted({(customer_id, str(f.meter_code), start, end) for f in metered.values()})
    counters = {c.meter_code: c for c in bootstrap.limits().counters(wanted)}
    data = [
        _view(customer_id, name, f, counters.get(str(f.meter_code)), end, granted(grants, name, now))
        for name, f in sorted(settings.features.items())
    ]
    return {"object": "list", "data": data}


def entitlement(
    customer_id: str, feature: str, now: datetime | None = None, extra: Sequence[Grant] = ()
) -> dict[str, Any]:
    """One feature of the customer (two reads at most); ``extra``: grants not stored yet, counted too."""
    now = now or datetime.now(UTC)
    record, settings = settings_at(customer_id, now)
    found = settings.features.get(feature)
    if found is None:
        raise NotFoundError(
            f"Customer {customer_id!r} has no feature {feature!r}.", code="feature_not_found", param="feature"
        )
    counter = None
    start, end = settings.period(now)
    if found.kind == "metered" and found.meter_code:
        counter = bootstrap.limits().counter(customer_id, found.meter_code, start, end)
    raised = granted([*parse(record.grants), *extra], feature, now)
    return _view(customer_id, feature, found, counter, end, raised)


def settings_at(customer_id: str, now: datetime) -> tuple[StoredLimits, LimitSettings]:
    """The customer's stored limits and the features in force at ``now``: its own over its plan
    versions' defaults (one read; 404 ``customer_not_found``)."""
    try:
        record = bootstrap.limits().settings_texts(customer_id)
    except LookupError:
        raise NotFoundError(
            f"No customer {customer_id!r}.", code="customer_not_found", param="customer_id"
        ) from None
    return record, effective_settings(record.own, record.plan, now) or LimitSettings()


def _view(
    customer_id: str, name: str, feature: Feature, counter: Counter | None, end: datetime, raised: Decimal
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "object": "entitlement",
        "customer_id": customer_id,
        "feature": name,
        "kind": feature.kind,
        "access": feature.enabled,
        "value": feature.value,
        "meter_code": feature.meter_code,
        "usage": None,
        "limit": None,
        "granted": None,
        "remaining": None,
        "resets_at": None,
    }
    if feature.kind == "metered" and feature.limit is not None:
        used = counter.used if counter is not None else Decimal(0)
        limit = exact_sum([feature.limit, raised])
        remaining = max(Decimal(0), exact_difference(limit, used))
        row.update(
            access=used < limit,
            usage=_text(used),
            limit=_text(limit),
            granted=_text(raised),
            remaining=_text(remaining),
            resets_at=iso_z(end),
        )
    return row


def _text(value: Decimal) -> str:
    return canonical_text(value)  # exact (``normalize`` rounds to 28 digits)
