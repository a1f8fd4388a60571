"""Rating a subscription's billing window from stored hourly aggregates (billing and the preview call it).

Reads, per charged meter, the aggregate items of the window's hours (O(hours x groups), never events),
attributes each hour to the phase its start falls in, combines the cells per phase and group with
``domain.usage.combine`` and prices them with ``domain.window_rating``. Rules in docs/pricing.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from neruba.domain.ingest import hour_bucket, hour_start
from neruba.domain.level_intervals import LevelInterval, level_intervals, part_changes
from neruba.domain.lines import GroupUsage
from neruba.domain.phases import (
    PhaseSpan,
    Terms,
    Versions,
    phase_spans,
    rated_at,
    rating_period,
    seconds,
    timeline,
)
from neruba.domain.pricing import ZERO, PricingError, RatedWindow
from neruba.domain.usage import CellUsage, combine, rule_usage, weighted_level
from neruba.domain.window_rating import rate_opening_window, rate_subscription_window
from neruba.errors import InvalidRequestError, NotFoundError
from neruba.logic.pricing.closing import WindowLevels

if TYPE_CHECKING:
    from neruba.dal.plans import PlansRepository
    from neruba.dal.usage import UsageRepository


def plan_versions(plans: PlansRepository, subscription: Terms) -> Versions:
    """Every plan version the subscription's phases name, read once each."""
    from neruba.dal.catalog import CatalogNotFoundError

    versions: dict[tuple[str, int], Mapping[str, Any]] = {}
    for phase in timeline(subscription).phases:
        key = (phase.plan_code, phase.plan_version)
        if key not in versions:
            try:
                versions[key] = plans.version(*key).document
            except CatalogNotFoundError as exc:
                raise NotFoundError(
                    f"No version {key[1]} of plan {key[0]!r}.", code="plan_not_found", param="plan_code"
                ) from exc
    return versions


def _effective_start(hour: str, subscription_start: datetime) -> datetime:
    """An hour counts from its start, except the hour the subscription starts in: from that start."""
    return rated_at(hour_start(hour), subscription_start)


def _span_of(spans: list[PhaseSpan], at: datetime) -> PhaseSpan | None:
    return next((s for s in spans if s.start <= at < s.end), None)


def read_usage(
    plans: PlansRepository,
    usage: UsageRepository,
    subscription: Terms,
    versions: Versions,
    spans: list[PhaseSpan],
    start: datetime,
    upper: datetime,
    period_seconds: Decimal | None = None,
    record_levels: bool = False,
) -> tuple[dict[int, dict[str, dict[str, GroupUsage]]], dict[int, dict[str, dict[str, GroupUsage]]]]:
    """Usage per phase index, meter and group for hours whose (effective) start is in [start, upper):
    ``(billable, trial)``, trial being the hours that start before the subscription's ``trial_end``.

    A level meter (weighted_sum, latest with carry_over) reads from its last closing level on; with
    ``record_levels`` (a whole window, billed or re-rated) the level at ``upper`` is stored as well."""
    paid: dict[int, dict[str, dict[str, GroupUsage]]] = defaultdict(dict)
    trial: dict[int, dict[str, dict[str, GroupUsage]]] = defaultdict(dict)
    if upper <= start or not spans:
        return {}, {}
    terms = timeline(subscription)
    customer_id = str(terms.customer_id)
    subscription_start = terms.anchor.astimezone(UTC)
    charging_from = terms.trial_end
    meters = sorted(
        {
            str(charge["meter_code"])
            for span in spans
            for charge in versions[(span.plan_code, span.plan_version)].get("charges") or []
        }
    )
    for meter_code in meters:
        meter = plans.get_meter(meter_code)
        if meter is None:
            raise NotFoundError(f"No meter {meter_code!r}.", code="meter_not_found", param="meter_code")
        span_of = {span.index: span for span in spans}
        cells: dict[tuple[int, bool, str], list[CellUsage]] = defaultdict(list)
        timed: dict[tuple[int, bool, str], list[tuple[datetime, CellUsage]]] = defaultdict(list)
        opening_of: list[tuple[datetime, str, CellUsage]] = []
        read: list[tuple[datetime, str, CellUsage]] = []
        first, last = hour_bucket(start), hour_bucket(upper - timedelta(microseconds=1))
        # a level meter's window starts from the level every earlier hour left (logic.pricing.closing)
        level = WindowLevels.open(usage, customer_id, meter, upper, record=record_levels)
        stored = (
            level.read(usage, first, last)
            if level
            else usage.aggregates(customer_id, meter_code, first, last)
        )
        for cell in stored:
            at = _effective_start(cell.hour, subscription_start)
            if level is not None:
                level.saw(cell, before_window=at < start)
            if not start <= at < upper:
                continue
            read.append((at, cell.group, cell.usage))
            span = _span_of(spans, at)
            if span is not None:
                in_trial = charging_from is not None and at < charging_from
                cells[(span.index, in_trial, cell.group)].append(cell.usage)
                timed[(span.index, in_trial, cell.group)].append((hour_start(cell.hour), cell.usage))
                opening_of.append((at, cell.group, cell.usage))
        opening_of += level.opening_cells() if level else []
        aggregation = meter.aggregation
        for (index, in_trial, group), items in cells.items():
            target = trial if in_trial else paid
            sums, counts = rule_usage(items)
            intervals: tuple[LevelInterval, ...] = ()
            if aggregation == "weighted_sum":
                part = _part(span_of[index], charging_from, in_trial)
                earlier = [(at, u) for at, g, u in opening_of if g == group]
                opening, changes = part_changes(
                    timed[(index, in_trial, group)], earlier, part, (start, upper)
                )
                length = period_seconds or seconds(start, upper)
                quantity = weighted_level(changes, *part, opening, length)
                intervals = tuple(level_intervals(changes, *part, opening, length))
            else:
                quantity = combine(aggregation, items)
            target[index].setdefault(meter_code, {})[group] = GroupUsage(
                quantity=quantity,
                hours=len(items),
                events=sum(i.count for i in items),
                event_sums=sums,
                event_counts=counts,
                aggregation=aggregation,
                intervals=intervals,
            )
        if aggregation == "weighted_sum":
            window_seconds = period_seconds or seconds(start, upper)
            _level_only_parts(
                meter_code,
                spans,
                charging_from,
                cells,
                opening_of,
                window_seconds,
                (start, upper),
                paid,
                trial,
            )
        if meter.carry_over and level is not None:
            _carry_over(meter_code, level.before_window(), bool(meter.group_by), spans, cells, read, paid)
        if level is not None:
            level.close()
        for span in spans:  # a charge without usage still names its meter's aggregation
            if not paid[span.index].get(meter_code):
                paid[span.index][meter_code] = {"": GroupUsage(ZERO, aggregation=aggregation)}
    return dict(paid), dict(trial)


def _level_only_parts(
    meter_code: str,
    spans: list[PhaseSpan],
    charging_from: datetime | None,
    cells: Mapping[tuple[int, bool, str], list[CellUsage]],
    opening_of: list[tuple[datetime, str, CellUsage]],
    period_seconds: Decimal,
    window: tuple[datetime, datetime],
    paid: dict[int, dict[str, dict[str, GroupUsage]]],
    trial: dict[int, dict[str, dict[str, GroupUsage]]],
) -> None:
    """A weighted_sum meter's parts without a change of their own still bill the level reached before
    them in the window (the part after a plan change, or after a trial)."""
    groups = sorted({group for _, group, _ in opening_of})
    for span in spans:
        for in_trial in (True, False):
            part = _part(span, charging_from, in_trial)
            if part[0] >= part[1] or (in_trial and charging_from is None):
                continue
            for group in groups:
                if (span.index, in_trial, group) in cells:
                    continue
                earlier = [(at, u) for at, g, u in opening_of if g == group]
                opening, changes = part_changes([], earlier, part, window)
                if opening or changes:
                    target = trial if in_trial else paid
                    target[span.index].setdefault(meter_code, {})[group] = GroupUsage(
                        quantity=weighted_level(changes, *part, opening, period_seconds),
                        aggregation="weighted_sum",
                        intervals=tuple(level_intervals(changes, *part, opening, period_seconds)),
                    )


def _part(span: PhaseSpan, charging_from: datetime | None, in_trial: bool) -> tuple[datetime, datetime]:
    """The trial or paid part of a phase span."""
    if charging_from is None:
        return span.start, span.end
    if in_trial:
        return span.start, min(span.end, charging_from)
    return max(span.start, charging_from), span.end


def _carry_over(
    meter_code: str,
    before: Mapping[str, CellUsage],
    grouped: bool,
    spans: list[PhaseSpan],
    cells: Mapping[tuple[int, bool, str], list[CellUsage]],
    read: list[tuple[datetime, str, CellUsage]],
    paid: dict[int, dict[str, dict[str, GroupUsage]]],
) -> None:
    """A ``latest`` meter with ``carry_over``: each phase part without an event of its own (per group)
    bills the last value reported before it: in the window, else ``before`` it (the window's opening
    level per group, from the closing level and the cells between it and the window)."""
    groups = sorted({g for _, g, _ in read} | set(before) | ({""} if not grouped else set()))
    for span in spans:
        for group in groups:
            if (span.index, False, group) in cells:
                continue
            earlier = [cell for at, g, cell in read if g == group and at < span.start]
            candidates = earlier or ([before[group]] if group in before else [])
            dated = [c for c in candidates if c.latest_at is not None]
            if dated:
                source = max(dated, key=lambda c: str(c.latest_at))
                paid[span.index].setdefault(meter_code, {})[group] = GroupUsage(
                    quantity=combine("latest", dated), carried_from=source.latest_at, aggregation="latest"
                )


def rate_window(
    plans: PlansRepository,
    usage: UsageRepository,
    subscription: Terms,
    period_start: datetime,
    period_end: datetime,
    *,
    as_of: datetime | None = None,
) -> RatedWindow:
    """Rate window [period_start, period_end) of a subscription, each phase under its own plan version.

    Usage: hours whose start is in [period_start, min(period_end, as_of)) and inside a phase (so not
    after an immediate cancellation; the hour the subscription starts in counts from the subscription
    start); hours starting before ``trial_end`` are shown on zero ``trial`` lines. Also the arrears fixed
    fee of the window's paid time, proration lines for a plan change or an immediate cancellation inside
    it, the minimum commitment top-up, and the advance fee of the next period (its paid part) unless the
    subscription ends at ``period_end``. A final window that stops at ``ended_at`` inside its period is
    rated over the whole period (docs/pricing.md, "Lifecycle rules").

    Example:
        >>> window = rate_window(plans, usage, sub, start, end)  # doctest: +SKIP
        >>> window.subtotal_minor == sum(line.amount_minor for line in window.lines)  # doctest: +SKIP
        True
    """
    for name, value in (("period_start", period_start), ("period_end", period_end), ("as_of", as_of)):
        if value is not None and value.tzinfo is None:
            raise InvalidRequestError(f"{name} needs a UTC offset.", code="invalid_time_range", param=name)
    if period_end <= period_start:
        raise InvalidRequestError("period_end must be after period_start.", code="invalid_time_range")
    terms = timeline(subscription)
    versions = plan_versions(plans, terms)
    spans = phase_spans(terms, period_start, period_end)
    upper = period_end if as_of is None else min(period_end, as_of)
    period = rating_period(terms, period_start, period_end)
    paid, trial = read_usage(
        plans, usage, terms, versions, spans, period_start, upper, seconds(*period), as_of is None
    )
    try:
        return rate_subscription_window(
            terms, versions, period_start, period_end, paid, as_of=as_of, trial_usage=trial
        )
    except PricingError as exc:
        raise InvalidRequestError(str(exc), code="pricing_error") from exc


def rate_opening(plans: PlansRepository, subscription: Terms) -> RatedWindow:
    """The opening window: the first period's advance fixed fee (no lines when the fee is in arrears).

    Example:
        >>> rate_opening(plans, sub).kind  # doctest: +SKIP
        'opening'
    """
    terms = timeline(subscription)
    return rate_opening_window(terms, plan_versions(plans, terms))
