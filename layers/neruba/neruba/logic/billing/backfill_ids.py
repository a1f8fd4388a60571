"""Held events under the transaction id of a stored event: what the commit does with each.

An event's transaction id names a *line* of stored events: the event stored under it and, where it was
amended (by an operator or a backfill), the corrected copy its void record names, copy after copy. The
line's *end* is its last event: the one accepted (the event's current content), or the last voided one.
A held event is decided against that end (:func:`resolve`):

- nothing stored: ``new``, counted by the commit's counting under its own id;
- the end is accepted with the same content (timestamp, meter, properties): ``stands``, not counted;
- the end is accepted with other content: in ``mode: replace`` ``supersede`` (the end is voided and the
  held content counted as its corrected copy, ``logic.billing.backfill_supersede``); in ``mode: add``
  ``not_counted`` (an add counts on top of what is stored: the stored event stands, as a live
  ``conflict``);
- the end is voided (any mode): ``relink``, the held content counted as the event's new content (a copy
  named in the voided end's void record);
- an end of another meter than the held event's, where the backfill would correct it: ``refused``
  (``event_id_stored_under_other_meter``): an event keeps its meter, as an amend does, and a backfill
  never voids usage of a meter it does not cover;
- the backfill's own copy stored already (a run again): ``done``.

The copy of a superseded or relinked event has the transaction id :func:`copy_transaction_id` (the held
id, ``~`` and ten hex digits that follow from the backfill and the id) and the copy id ``{backfill}:{n}``
the commit's counting would have given the held event: the link back to the backfill.

Refusals: when an event is sent, ``rejected`` with ``event_id_stored_under_other_meter``; at preview and
commit, for held events whose line changed since (a live event of another meter arrived under the id),
``409 backfill_event_ids_taken`` naming them, nothing written. Rules: docs/billing.md, "Held events under
a stored transaction id".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from neruba import jsonutil
from neruba.dal.backfills import HeldEvent
from neruba.dal.usage import StoredEvent
from neruba.domain.ingest import fingerprint
from neruba.errors import ConflictError
from neruba.logic import idempotency
from neruba.logic.billing.context import Billing
from neruba.timefmt import iso, parse_ts

OTHER_METER = "event_id_stored_under_other_meter"
MESSAGES = {
    OTHER_METER: "The transaction_id belongs to a stored event of another meter; an event keeps its meter. "
    "Send the event under a new transaction_id.",
}
HOPS = 50  # at most this many copies followed along one line


@dataclass(frozen=True, slots=True)
class Resolved:
    """What the commit does with one held event, and the stored event it stands for or corrects."""

    kind: str  # new | stands | not_counted | supersede | relink | refused | done | counted | ingest
    target: StoredEvent | None = None
    code: str | None = None


def copy_transaction_id(backfill_id: str, held: HeldEvent) -> str:
    """The transaction id of the copy that corrects ``held``'s stored event."""
    suffix = idempotency.digest({"backfill-copy": [backfill_id, held.customer_id, held.transaction_id]}, 10)
    return f"{held.transaction_id[:240]}~{suffix}"


def own_keys(backfill_id: str, held: list[HeldEvent]) -> dict[tuple[str, str], str]:
    """Every key the backfill's commit may store an event under (the held ids and their copies' ids),
    with the copy id it would carry (``{backfill_id}:{n}``)."""
    keys: dict[tuple[str, str], str] = {}
    for n, event in enumerate(held):
        keys[(event.customer_id, event.transaction_id)] = f"{backfill_id}:{n}"
        keys[(event.customer_id, copy_transaction_id(backfill_id, event))] = f"{backfill_id}:{n}"
    return keys


def counted(ctx: Billing, backfill_id: str, held: list[HeldEvent]) -> dict[tuple[str, str], StoredEvent]:
    """The events the commit stored (under a held id or as a copy), whatever their status now."""
    keys = own_keys(backfill_id, held)
    stored = ctx.usage.get_events(keys)
    return {k: e for k, e in stored.items() if e.copy_id == keys[k]}


def counted_held(
    ctx: Billing, backfill_id: str, held: list[HeldEvent], status: str | None
) -> list[HeldEvent]:
    """The held events the commit counted (under their id or as a copy), ``status`` now if given."""
    found = counted(ctx, backfill_id, held)
    out = []
    for event in held:
        keys = [
            (event.customer_id, event.transaction_id),
            (event.customer_id, copy_transaction_id(backfill_id, event)),
        ]
        if any(k in found and (status is None or found[k].status == status) for k in keys):
            out.append(event)
    return out


def _record(event: StoredEvent) -> dict[str, Any]:
    return dict(jsonutil.loads(event.void_json)) if event.void_json else {}


def line_ends(ctx: Billing, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredEvent]:
    """Per ``(customer_id, transaction_id)`` stored, the end of its line (itself when not amended)."""
    ends = dict(ctx.usage.get_events(set(keys)))
    for _ in range(HOPS):
        follow = {
            k: (e.customer_id, str(_record(e)["amended_by"]))
            for k, e in ends.items()
            if e.status == "voided" and _record(e).get("amended_by")
        }
        if not follow:
            break
        found = ctx.usage.get_events(set(follow.values()))
        moved = False
        for key, nxt in follow.items():
            if nxt in found:
                ends[key], moved = found[nxt], True
        if not moved:
            break
    return ends


def same_content(stored: StoredEvent, held: HeldEvent) -> bool:
    """The stored event holds what ``held`` does (meter, time, properties; the timestamp's text aside)."""
    event = held.event
    mine = fingerprint(
        held.customer_id, str(event["code"]), iso(parse_ts(str(event["timestamp"]))), event["properties"]
    )
    theirs = fingerprint(
        stored.customer_id,
        stored.meter_code,
        iso(parse_ts(stored.timestamp)),
        jsonutil.loads(stored.properties_json),
    )
    return mine == theirs


def resolve(
    ctx: Billing, backfill_id: str, mode: str, held: list[HeldEvent]
) -> dict[tuple[str, str], Resolved]:
    """Per ``(customer_id, transaction_id)`` of ``held``, what the commit does with it (a few batch reads)."""
    if not held:
        return {}
    copies = ctx.usage.get_events((e.customer_id, copy_transaction_id(backfill_id, e)) for e in held)
    keys = [(e.customer_id, e.transaction_id) for e in held]
    ends = line_ends(ctx, keys)
    originals = ctx.usage.get_events(
        (c.customer_id, c.amends) for c in copies.values() if c.amends is not None
    )
    out: dict[tuple[str, str], Resolved] = {}
    for event in held:
        key = (event.customer_id, event.transaction_id)
        copy = copies.get((event.customer_id, copy_transaction_id(backfill_id, event)))
        if copy is not None and copy.copy_id and copy.copy_id.startswith(f"{backfill_id}:"):
            out[key] = Resolved("done", originals.get((copy.customer_id, str(copy.amends))))
            continue
        out[key] = _decide(ends.get(key), event, backfill_id, mode)
    return out


def _decide(end: StoredEvent | None, held: HeldEvent, backfill_id: str, mode: str) -> Resolved:
    if end is None:
        return Resolved("new")
    if (end.copy_id or "").startswith(f"{backfill_id}:") and end.transaction_id == held.transaction_id:
        return Resolved("counted", end)  # counted under its own id by an earlier run
    if end.status == "accepted":
        if same_content(end, held):
            return Resolved("stands", end)
        if mode != "replace":
            return Resolved("not_counted", end)
        return _other_meter(end, held) or Resolved("supersede", end)
    if end.status == "voided":
        if _record(end).get("amended_by"):
            return Resolved("not_counted", end)  # a copy named but not found: left as it is
        return _other_meter(end, held) or Resolved("relink", end)
    return Resolved("ingest", end)  # failed or over_limit: the counting decides, as for a live copy


def _other_meter(end: StoredEvent, held: HeldEvent) -> Resolved | None:
    if end.meter_code != str(held.event["code"]):
        return Resolved("refused", end, OTHER_METER)
    return None


def other_content(ctx: Billing, held: list[HeldEvent], limit: int = 100) -> tuple[int, list[dict[str, str]]]:
    """Of ``held`` (events a commit does not count), those whose transaction id holds an accepted event
    with other content: it stands (an add counts on top of what is stored, as a live ``conflict``). Their
    number, and the first ``limit`` as ``{customer_id, transaction_id}``."""
    ends = line_ends(ctx, [(e.customer_id, e.transaction_id) for e in held])
    found = []
    for event in held:
        end = ends.get((event.customer_id, event.transaction_id))
        if end is not None and end.status == "accepted" and not same_content(end, event):
            found.append({"customer_id": event.customer_id, "transaction_id": event.transaction_id})
    return len(found), found[:limit]


def problems(
    ctx: Billing, backfill_id: str, mode: str, held: Iterable[HeldEvent]
) -> dict[tuple[str, str], str]:
    """Per ``(customer_id, transaction_id)`` of ``held``, why it could not be counted."""
    found = resolve(ctx, backfill_id, mode, list(held))
    return {k: str(r.code) for k, r in found.items() if r.kind == "refused"}


def require_countable(ctx: Billing, backfill_id: str, doc: dict[str, Any], held: list[HeldEvent]) -> None:
    """Before a preview or a commit of an open backfill: 409 ``backfill_event_ids_taken`` when a held
    event could not be counted under its transaction id."""
    found = problems(ctx, backfill_id, str(doc.get("mode") or "add"), held)
    if not found:
        return
    details = [{"customer_id": c, "transaction_id": t, "code": why} for (c, t), why in sorted(found.items())]
    raise ConflictError(
        f"{len(details)} held event(s) of backfill {backfill_id} cannot be counted: their transaction id "
        "belongs to a stored event of another meter (see details). Nothing was written. Cancel this "
        "backfill and send its events again in a new backfill, those under new transaction ids.",
        code="backfill_event_ids_taken",
        details=details,
    )
