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
from neruba.domain.phases import phase_at, phase_spans, rated_at

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
        if found is None or at < terms.anchor or (end is not None and owner >= end):
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


def bills_between(
    plans: PlansRepository, customer_id: str, meter_code: str, start: datetime, end: datetime
) -> bool:
    """Whether a phase of ``customer_id``'s subscriptions that rates hours of [start, end) bills
    ``meter_code`` in advance (trials included: their hours turn into advance hours when the trial ends
    inside the range). The hour ``start`` falls in belongs to the phase in force at that hour's start, so
    the range is taken from that hour on."""
    lo = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    for sub in plans.customer_subscriptions(customer_id):
        for span in phase_spans(sub.timeline, lo, end):
            version = plans.version(span.plan_code, span.plan_version).document
            for charge in version.get("charges") or []:
                if charge.get("meter_code") == meter_code and terms_of(charge) is not None:
                    return True
    return False
