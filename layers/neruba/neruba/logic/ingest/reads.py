"""Reading usage back: one stored event with its outcomes, a customer's events, outcome counts, aggregated
usage."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from neruba import jsonutil
from neruba.dal.plans import PlansRepository
from neruba.dal.usage import HistoryEntry, StoredEvent, UsageRepository
from neruba.domain.groups import parse_group
from neruba.domain.ingest import hour_bucket, hour_start
from neruba.domain.usage import CellUsage, bucket_of, combine
from neruba.errors import InvalidRequestError, NotFoundError
from neruba.models.events import OUTCOMES
from neruba.timefmt import iso_z, label_z

MAX_SPAN = {"minute": timedelta(days=1), "hour": timedelta(days=31), "day": timedelta(days=400)}
EVENT_LIST_SPAN = timedelta(days=31)


def event_view(usage: UsageRepository, customer_id: str, transaction_id: str) -> dict[str, Any]:
    """The stored event and the history of every copy received under its key."""
    item = usage.get_event(customer_id, transaction_id)
    if item is None:
        raise NotFoundError(
            f"No event {transaction_id!r} for customer {customer_id!r}.",
            code="event_not_found",
            param="transaction_id",
        )
    return event_document(item)


def event_document(item: StoredEvent) -> dict[str, Any]:
    """A stored event as the API shows it (``StoredEvent`` in the reference)."""
    own = item.first_outcome or ("failed" if item.status == "failed" else "accepted")
    first = HistoryEntry(own, item.request_id, item.copy_id, item.written_at, reason=item.reason)
    history = [_outcome_row(entry) for entry in (first, *item.history)]
    history.sort(key=lambda row: str(row["at"]))
    return {
        "object": "event",
        "transaction_id": item.transaction_id,
        "customer_id": item.customer_id,
        "code": item.meter_code,
        "timestamp": item.timestamp,
        "properties": jsonutil.loads(item.properties_json),
        "status": item.status,
        "reason": item.reason,
        "reason_message": item.reason_message,
        "late": item.late,
        "received_at": item.received_at,
        "outcomes": history,
        "copies": {o: item.copies[o] for o in OUTCOMES if item.copies.get(o)},
        # only on a voided event and on an amend's copy (docs/billing.md, "Voiding and amending events")
        **({"void": _void(item)} if item.void_json else {}),
        **({"amends": item.amends} if item.amends else {}),
        **({"restored": _restored(item)} if item.restored_json else {}),
    }


def _restored(item: StoredEvent) -> dict[str, Any]:
    """A restored event's record: the backfill whose revert gave it back, why, when, by whom, the void."""
    record = jsonutil.loads(item.restored_json or "{}")
    shown = {name: record.get(name) for name in ("backfill", "reason", "ticket", "at", "actor")}
    return {**shown, "void": _void_record(record.get("void") or {})}


def _void(item: StoredEvent) -> dict[str, Any]:
    return _void_record(jsonutil.loads(item.void_json or "{}"))


def _void_record(record: dict[str, Any]) -> dict[str, Any]:
    """A void record as shown: how (``void`` or ``amend``), why, ticket, when, by whom, the copy."""
    return {name: record.get(name) for name in ("kind", "reason", "ticket", "at", "actor", "amended_by")}


def _outcome_row(entry: HistoryEntry) -> dict[str, Any]:
    row: dict[str, Any] = {
        "outcome": entry.outcome,
        "request_id": entry.request_id,
        "copy_id": entry.copy_id,
        "at": entry.at,
    }
    if entry.reason:
        row["reason"] = entry.reason
    if entry.payload:
        row["payload"] = jsonutil.loads(entry.payload)
    return row


def list_events(
    usage: UsageRepository,
    catalog: PlansRepository,
    customer_id: str,
    meter_code: str | None,
    start: datetime,
    end: datetime,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """A list page of the customer's counted events (of one meter, or of every meter of the catalog) whose
    timestamp is in [start, end), by hour; see docs/api.md, "Listing events"."""
    _check_window(start, end, EVENT_LIST_SPAN)
    if catalog.get_customer(customer_id) is None:
        raise NotFoundError(f"No customer {customer_id!r}.", code="customer_not_found", param="customer_id")
    if meter_code is not None:
        if catalog.get_meter(meter_code) is None:
            raise NotFoundError(f"No meter {meter_code!r}.", code="meter_not_found", param="meter")
        meters = [meter_code]
    else:
        meters = _meter_codes(catalog)
    page = usage.list_events(customer_id, meters, start, end, limit, cursor)
    return {
        "object": "list",
        "data": [event_document(event) for event in page.events],
        "has_more": page.next_cursor is not None,
        "next_cursor": page.next_cursor,
    }


def _meter_codes(catalog: PlansRepository) -> list[str]:
    codes: list[str] = []
    cursor: str | None = None
    while True:
        docs, cursor = catalog.list_docs("meter", 100, cursor)
        codes += [str(doc["code"]) for doc in docs]
        if cursor is None:
            return codes


def _check_window(start: datetime, end: datetime, longest: timedelta) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidRequestError("from and to need a UTC offset.", code="invalid_time_range", param="from")
    if end <= start:
        raise InvalidRequestError("to must be after from.", code="invalid_time_range", param="to")
    if end - start > longest:
        raise InvalidRequestError(
            f"from and to may be at most {longest.days} days apart.", code="time_range_too_long", param="to"
        )


def _span(start: datetime, end: datetime, granularity: str) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidRequestError("from and to need a UTC offset.", code="invalid_time_range", param="from")
    if end <= start:
        raise InvalidRequestError("to must be after from.", code="invalid_time_range", param="to")
    if end - start > MAX_SPAN[granularity]:
        raise InvalidRequestError(
            f"At most {MAX_SPAN[granularity].days} days at {granularity} granularity.",
            code="time_range_too_long",
            param="to",
        )


def outcome_counts(
    usage: UsageRepository, start: datetime, end: datetime, granularity: str
) -> dict[str, Any]:
    """Outcome counts per minute or hour in [start, end), each bucket labelled by its first instant in UTC
    with ``Z`` (``2026-01-31T12:05:00Z``; the stored minute labels stay as they are)."""
    _span(start, end, granularity)
    buckets: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
    for row in usage.outcomes(start, end):
        key = label_z(row.minute if granularity == "minute" else row.minute[:13])
        for outcome in OUTCOMES:
            buckets[key][outcome] += row.counts.get(outcome, 0)
    data: list[dict[str, Any]] = [{"start": key, **counts} for key, counts in sorted(buckets.items())]
    totals = {o: sum(counts[o] for counts in buckets.values()) for o in OUTCOMES}
    return {"object": "list", "granularity": granularity, "data": data, "totals": totals}


def _period_bucket(catalog: PlansRepository, customer_id: str) -> Callable[[str], str]:
    """Buckets hours by the billing period (of the customer's earliest subscription) their start falls in;
    without a subscription the whole range is one bucket."""
    from neruba.domain.periods import period_containing

    subscriptions = catalog.customer_subscriptions(customer_id)
    if not subscriptions:
        return lambda hour: "total"
    first = min((s.timeline for s in subscriptions), key=lambda s: s.anchor)
    anchor, interval = first.anchor.astimezone(UTC), first.every

    def bucket(hour: str) -> str:
        at = hour_start(hour)
        if at < anchor:
            return "before_subscription"
        return iso_z(period_containing(anchor, interval, at)[0])

    return bucket


def usage_view(
    usage: UsageRepository,
    catalog: PlansRepository,
    customer_id: str,
    meter_code: str,
    start: datetime,
    end: datetime,
    granularity: str,
    group_by: str | None,
) -> dict[str, Any]:
    """Aggregated usage of one meter for a customer, per hour, day or billing period, maybe per group; each
    bucket labelled by its first instant in UTC with ``Z`` (``2026-01-31T12:00:00Z``), or ``total`` /
    ``before_subscription`` for a period bucket that has no start of its own."""
    _span(start, end, "hour" if granularity == "hour" else "day")
    if catalog.get_customer(customer_id) is None:
        raise NotFoundError(f"No customer {customer_id!r}.", code="customer_not_found", param="customer_id")
    meter = catalog.get_meter(meter_code)
    if meter is None:
        raise NotFoundError(f"No meter {meter_code!r}.", code="meter_not_found", param="meter")
    if group_by is not None and group_by not in meter.group_by:
        raise InvalidRequestError(
            f"Meter {meter_code!r} groups by {meter.group_by}, not {group_by!r}.",
            code="invalid_group_by",
            param="group_by",
        )
    first, last = hour_bucket(start), hour_bucket(end - timedelta(microseconds=1))
    bucket = _period_bucket(catalog, customer_id) if granularity == "period" else None
    cells: dict[tuple[str, str], list[CellUsage]] = defaultdict(list)
    for cell in usage.aggregates(customer_id, meter_code, first, last):
        group_value = parse_group(cell.group).get(group_by or "", "")
        key = bucket(cell.hour) if bucket else label_z(bucket_of(cell.hour, granularity))
        cells[(key, group_value if group_by else "")].append(cell.usage)
    data = []
    for (bucket_key, group_value), items in sorted(cells.items()):
        row: dict[str, Any] = {
            "bucket": bucket_key,
            "quantity": combine(meter.aggregation, items),
            "events": sum(i.count for i in items),
        }
        if group_by:
            row["group"] = {group_by: group_value}
        data.append(row)
    total = (
        combine(meter.aggregation, [i for items in cells.values() for i in items]) if cells else Decimal(0)
    )
    return {
        "object": "usage",
        "customer_id": customer_id,
        "meter": meter_code,
        "aggregation": meter.aggregation,
        "granularity": granularity,
        "from": start.isoformat(),  # the caller's own bounds, echoed as sent
        "to": end.isoformat(),
        "total": total,
        "data": data,
    }
