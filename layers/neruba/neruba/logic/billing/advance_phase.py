"""Which charge bills an event in advance (docs/pricing.md, "Pay-in-advance charges", "which phase bills an
event"): the one rule that billed the event (``logic.billing.advance``) and that a void checks
(``logic.ingest.voids``); and whether a customer's phases bill a meter in advance anywhere in a range (a
backfill's scope: ``logic.billing.backfills``). Plain reads of the catalog; nothing is written here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from neruba.domain.advance import terms_of
from neruba.domain.phases import hour_of, owned_hours, phase_at, rated_at

if TYPE_CHECKING:
    from neruba.dal.plans import PlansRepository, Subscription


def charge_for(
    plans: PlansRepository, customer_id: str, meter_code: str, at: datetime
) -> tuple[Subscription, Mapping[str, Any], Mapping[str, Any]] | str:
    """The subscription, plan version and charge billing ``meter_code`` in advance at ``at`` (the phase
    that rates the event's hour decides), or the reason nothing is billed in advance. Plan versions are
    never edited and a past hour's phase never changes, so this answer is the same whenever it is asked:
    what billed the event (``process_message``) and what a void checks (``logic.ingest.voids``)."""
    reason = "no_subscription"
    for sub in plans.customer_subscriptions(customer_id):
        terms = sub.timeline
        owner = rated_at(at, terms.anchor.astimezone(UTC))  # the phase rating the event's hour bills it
        found = phase_at(terms, owner)
        end = terms.ended_at
        # the hour a subscription starts in is its own whole, events before its start included (the
        # window rates that hour under it): ``owner`` is the start there, before it the hour itself
        if found is None or owner < terms.anchor or (end is not None and owner >= end):
            continue
        phase = found[1]
        version = plans.version(phase.plan_code, phase.plan_version).document
        for charge in version.get("charges") or []:
            if charge.get("meter_code") != meter_code:
                continue
            if terms_of(charge) is None:
                reason = "charged_in_arrears"
                continue
            trial = terms.trial_end
            if trial is not None and owner < trial:
                reason = "in_trial"
                continue
            return sub, version, charge
    return reason


def billed_between(plans: PlansRepository, customer_id: str, start: datetime, end: datetime) -> set[str]:
    """The meters a phase of ``customer_id``'s subscriptions that rates hours of [start, end) bills in
    advance (trials included: their hours turn into advance hours when the trial ends inside the range).
    Usage is kept per hour, and an hour belongs to the phase in force at its start (a subscription's first
    hour to its first phase, whole), so each side is compared by the hours it touches (``owned_hours``).
    One read of the customer's subscriptions, each plan version read once."""
    first, found = hour_of(start), set()
    versions: dict[tuple[str, int], Mapping[str, Any]] = {}
    for sub in plans.customer_subscriptions(customer_id):
        terms = sub.timeline
        for phase in terms.phases:
            own_start, own_end = owned_hours(phase.start, phase.end, first=phase.start == terms.anchor)
            if not (own_start < end and (own_end is None or first < own_end)):
                continue
            key = (phase.plan_code, phase.plan_version)
            if key not in versions:
                versions[key] = plans.version(*key).document
            found |= {str(c["meter_code"]) for c in versions[key].get("charges") or [] if terms_of(c)}
    return found
