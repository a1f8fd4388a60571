"""Setting and reading a customer's usage limits (admin ``PUT`` / read ``GET /v1/customers/{id}/limits``).

A write replaces the customer's whole settings, on condition that they are still what was read (a write
landing in between makes it read again), with its audit record (``customer.limits``) and, with an
``Idempotency-Key``, the record of its answer, in one transaction (``logic.idempotency``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from neruba import bootstrap
from neruba.dal.features import BALANCE_ALERT
from neruba.dal.limits import SPEND
from neruba.dal.transaction import Cancelled
from neruba.domain.limits import (
    CAPPABLE,
    DEFAULT_ANCHOR,
    FIRED_KINDS,
    Feature,
    LimitSettings,
    MeterLimits,
    fired_level,
)
from neruba.domain.numbers import canonical_text, exact_difference
from neruba.errors import ConflictError, InvalidRequestError, NotFoundError
from neruba.logic.idempotency import Actor, audit_put, fingerprint, record_items, replay
from neruba.models.limits import FeatureIn, MeterLimitIn, PlanDefaultsIn, UsageLimitsIn
from neruba.timefmt import iso_z

IDEMPOTENCY_SCOPE = "usage-limits"
ATTEMPTS = 5


def put_limits(
    customer_id: str,
    body: UsageLimitsIn,
    idempotency_key: str | None,
    by: Actor,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Replace the customer's usage limits (validated); returns the limits as ``get_limits`` shows them."""
    now = now or datetime.now(UTC)
    billing, limits = bootstrap.billing_records(), bootstrap.limits()
    request = fingerprint(body.model_dump(mode="json"), f"limits:{customer_id}")
    currency = _customer(customer_id)[0]  # 404 before any rule of the body
    settings = _validated(customer_id, body)
    something = settings.meters or settings.features or settings.spend_alerts or settings.balance_alerts
    text = settings.stored() if something else None
    for _attempt in range(ATTEMPTS):
        first = replay(billing, IDEMPOTENCY_SCOPE, idempotency_key, request)
        if first is not None:
            return dict(first)
        before = _current(customer_id)
        answer = _view(customer_id, settings, now, currency, counted=True)
        audit = audit_put(
            bootstrap.audit(),
            by,
            "customer.limits",
            customer_id,
            customer_id=customer_id,
            at=now,
            before=_audited(before),
            after=_audited(text),
            reason=body.reason,
            ticket=body.ticket,
            idempotency_key=idempotency_key,
        )
        records = record_items(billing, audit, IDEMPOTENCY_SCOPE, idempotency_key, request, answer)
        if settings.balance_alerts:  # the writes lowering its credit read its levels (logic.limits.balance)
            records = [*records, billing.features.customer_item(customer_id, BALANCE_ALERT)]
        try:
            limits.set_settings(customer_id, text, before, records)
        except Cancelled:
            continue  # the settings (or this key's record) changed meanwhile: read again
        return answer
    raise ConflictError("The customer's limits kept changing; try again.", code="limits_conflict")


def get_limits(customer_id: str, now: datetime | None = None) -> dict[str, Any]:
    """The customer's limits with each meter's usage in the current period."""
    now = now or datetime.now(UTC)
    currency, text = _customer(customer_id)
    settings = LimitSettings.from_stored(text) or LimitSettings()
    return _view(customer_id, settings, now, currency, counted=True)


def _customer(customer_id: str) -> tuple[str, str | None]:
    """The customer's currency and its own limit settings as stored, in one read (404: no customer)."""
    customer, text, _version = bootstrap.catalog().customer_limits_and_balance_version(customer_id)
    if customer is None:
        raise NotFoundError(f"No customer {customer_id!r}.", code="customer_not_found", param="customer_id")
    return customer.currency, text


def _current(customer_id: str) -> str | None:
    try:
        return bootstrap.limits().settings_text(customer_id)
    except LookupError:
        raise NotFoundError(
            f"No customer {customer_id!r}.", code="customer_not_found", param="customer_id"
        ) from None


def _audited(text: str | None) -> dict[str, Any] | None:
    import json

    return None if text is None else dict(json.loads(text))


def _validated(customer_id: str, body: UsageLimitsIn) -> LimitSettings:
    from neruba.logic.limits.amounts import check_rateable

    meters = _meters(body.meters, customer_id=customer_id)
    for name, levels in (
        ("spend_alerts_minor", body.spend_alerts_minor),
        ("balance_alerts_minor", body.balance_alerts_minor),
    ):
        if len(set(levels)) != len(levels):
            raise InvalidRequestError(
                "Each alert level may be given once.", code="duplicate_alert", param=name
            )
    if body.spend_alerts_minor:
        check_rateable(customer_id, None, "spend_alerts_minor")
    anchor = body.period_anchor.astimezone(UTC) if body.period_anchor is not None else DEFAULT_ANCHOR
    return LimitSettings(
        anchor,
        body.interval,
        meters,
        _features(body.features),
        tuple(sorted(body.spend_alerts_minor)),
        tuple(sorted(body.balance_alerts_minor)),
    )


def validated_defaults(body: PlanDefaultsIn | None) -> LimitSettings:
    """A plan version's default limits and features, checked by the rules of a customer's (each
    ``param`` under ``defaults.``); empty when the version sets none."""
    if body is None:
        return LimitSettings()
    return LimitSettings(
        meters=_meters(body.meters, "defaults."), features=_features(body.features, "defaults.")
    )


def _meters(
    entries: Sequence[MeterLimitIn], prefix: str = "", customer_id: str | None = None
) -> dict[str, MeterLimits]:
    """Each meter's limits, checked; an amount cap against ``customer_id``'s subscriptions (a plan
    version's defaults, without a customer, take none: amounts are set per customer)."""
    from neruba.logic.limits.amounts import check_rateable

    meters: dict[str, MeterLimits] = {}
    for i, entry in enumerate(entries):
        param = f"{prefix}meters.{i}"
        if entry.meter_code in meters:
            raise InvalidRequestError(
                f"Meter {entry.meter_code!r} is listed twice; give each meter's limits once.",
                code="duplicate_meter",
                param=f"{param}.meter_code",
            )
        _cappable(entry.meter_code, f"{param}.meter_code")
        if (
            entry.hard_cap is None
            and entry.soft_cap is None
            and not entry.alerts
            and entry.hard_cap_amount_minor is None
        ):
            raise InvalidRequestError(
                "Give a hard_cap, a soft_cap or alerts for each meter listed.",
                code="limit_empty",
                param=param,
            )
        if entry.hard_cap is not None and entry.soft_cap is not None and entry.soft_cap > entry.hard_cap:
            raise InvalidRequestError(
                "The soft_cap must not be above the hard_cap.", code="soft_cap_above_hard_cap", param=param
            )
        if len(set(entry.alerts)) != len(entry.alerts):
            raise InvalidRequestError(
                "Each alert level may be given once.", code="duplicate_alert", param=f"{param}.alerts"
            )
        if entry.hard_cap_amount_minor is not None:
            if customer_id is None:
                raise InvalidRequestError(
                    "An amount cap is set per customer (PUT /v1/customers/{id}/limits), not on a plan"
                    " version: its amount depends on the customer's subscriptions.",
                    code="amount_limit_unsupported",
                    param=f"{param}.hard_cap_amount_minor",
                )
            check_rateable(customer_id, {entry.meter_code}, f"{param}.hard_cap_amount_minor")
        meters[entry.meter_code] = MeterLimits(
            entry.hard_cap,
            entry.soft_cap,
            tuple(sorted(Decimal(a) for a in entry.alerts)),
            entry.hard_cap_amount_minor,
        )
    return meters


def _features(entries: Sequence[FeatureIn], prefix: str = "") -> dict[str, Feature]:
    features: dict[str, Feature] = {}
    for i, entry in enumerate(entries):
        param = f"{prefix}features.{i}"
        if entry.feature in features:
            raise InvalidRequestError(
                f"Feature {entry.feature!r} is listed twice.",
                code="duplicate_feature",
                param=f"{param}.feature",
            )
        if entry.kind == "metered":
            if entry.meter_code is None or entry.limit is None:
                raise InvalidRequestError(
                    "A metered feature needs a meter_code and a limit.",
                    code="feature_incomplete",
                    param=param,
                )
            _cappable(entry.meter_code, f"{param}.meter_code")
        elif entry.kind == "static" and entry.value is None:
            raise InvalidRequestError(
                "A static feature needs a value.", code="feature_incomplete", param=param
            )
        elif entry.meter_code is not None or entry.limit is not None:
            raise InvalidRequestError(
                "Only a metered feature takes a meter_code and a limit.",
                code="feature_incomplete",
                param=param,
            )
        features[entry.feature] = Feature(
            entry.kind, entry.enabled, entry.value, entry.meter_code, entry.limit
        )
    return features


def _cappable(code: str, param: str) -> None:
    """404-free check that a meter exists and is a count or sum meter (400 otherwise)."""
    meter = bootstrap.catalog().get_meter(code)
    if meter is None:
        raise InvalidRequestError(f"No meter {code!r}.", code="meter_not_found", param=param)
    if meter.aggregation not in CAPPABLE:
        raise InvalidRequestError(
            f"Meter {meter.code!r} aggregates by {meter.aggregation}: limits apply to count and sum "
            "meters only, whose period usage is the running total of their events.",
            code="limit_aggregation_unsupported",
            param=param,
        )


def _view(
    customer_id: str, settings: LimitSettings, now: datetime, currency: str, *, counted: bool = False
) -> dict[str, Any]:
    start, end = settings.period(now)
    codes = [*sorted(settings.meters), *([SPEND] if settings.spend_alerts else [])]
    wanted = [(customer_id, code, start, end) for code in codes] if counted else []
    counters = {c.meter_code: c for c in bootstrap.limits().counters(wanted)}  # one batch
    rows = []
    for code, meter in sorted(settings.meters.items()):
        used, fired, amount = Decimal(0), set[str](), 0
        if code in counters:
            counter = counters[code]
            used, fired, amount = counter.used, counter.fired, counter.amount
        remaining = (
            None if meter.hard_cap is None else max(Decimal(0), exact_difference(meter.hard_cap, used))
        )
        rows.append(
            {
                "meter_code": code,
                "hard_cap": _text(meter.hard_cap),
                "soft_cap": _text(meter.soft_cap),
                "alerts": [_text(a) for a in meter.alerts],
                "usage": _text(used),
                "remaining": _text(remaining),
                "alerts_fired": _fired(fired, (start, end), code, None),
                "hard_cap_amount_minor": meter.hard_cap_amount,
                "amount_minor": amount if settings.rates(code) else None,
            }
        )
    spend = counters.get(SPEND)
    return {
        "object": "usage_limits",
        "customer_id": customer_id,
        "period_anchor": iso_z(settings.anchor),
        "interval": settings.interval,
        "period_start": iso_z(start),
        "period_end": iso_z(end),
        "meters": rows,
        "spend_alerts_minor": list(settings.spend_alerts),
        "spend_minor": int(spend.used) if spend is not None else None,
        "spend_alerts_fired": _fired(spend.fired, (start, end), None, currency) if spend is not None else [],
        "balance_alerts_minor": list(settings.balance_alerts),
    }


def _fired(
    keys: set[str], period: tuple[datetime, datetime], meter_code: str | None, currency: str | None
) -> list[dict[str, Any]]:
    """The levels of a counter's fired set as the API shows them (``models.limits.FiredAlert``), lowest
    first: the stored keys are translated, never changed."""
    rows = []
    for key in keys:
        kind, level = fired_level(key)
        rows.append(
            {
                "alert": key,
                "kind": kind,
                "meter_code": meter_code,
                "threshold": None if kind == "spend" else _text(level),
                "threshold_minor": int(level) if kind == "spend" else None,
                "currency": currency if kind == "spend" else None,
                "period_start": iso_z(period[0]),
                "period_end": iso_z(period[1]),
            }
        )
    order = {kind: i for i, kind in enumerate(FIRED_KINDS.values())}
    return sorted(rows, key=lambda r: (Decimal(r["threshold"] or r["threshold_minor"]), order[r["kind"]]))


def _text(value: Decimal | None) -> str | None:
    return None if value is None else canonical_text(value)  # exact (``normalize`` rounds to 28 digits)
