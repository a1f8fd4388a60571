"""The one error shape, as a documented model (``neruba.errors`` builds it; this module describes it).

Every 4xx/5xx answer of the API, whichever layer refuses the request (API Gateway's authorizer, the body
checks, a route), is an :class:`ErrorResponse`. ``ERROR_CODES`` is the list of ``code`` values a client can
meet, each with what it means; the OpenAPI document and docs/api-errors.md show it.

Example:
    >>> body = {"error": {"type": "invalid_request_error", "code": "customer_not_found",
    ...                   "message": "No customer 'acme'.", "param": "customer_id", "request_id": "r1"}}
    >>> ErrorResponse.model_validate(body).error.code
    'customer_not_found'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ERROR_CODES: dict[str, str] = {
    # the request as a whole
    "invalid_json": "The body is not valid JSON.",
    "duplicate_key": "The body names a key twice in one object.",
    "invalid_body": "The body is not UTF-8 text (or not valid base64).",
    "validation_error": "A parameter or the body does not match the schema; details name each field.",
    "unsupported_media_type": "The body is declared as another media type than JSON.",
    "payload_too_large": "The body is over the size limit.",
    "route_not_found": "No route has this path.",
    "method_not_allowed": "The path exists with other methods (listed in the Allow header).",
    "invalid_cursor": "starting_after is not a cursor this list returned.",
    "unknown_parameter": "The query names a parameter the route does not take.",
    "filter_required": "The list needs one of its filters (named in the message).",
    "conflicting_filters": "The query names filters of two different lists; pass one list's filters.",
    "invalid_time_range": "from/to are missing, reversed or malformed.",
    "start_past_calendar": "A subscription's first billing period would end after the year 9999.",
    "time_range_too_long": "from/to span more than the route allows.",
    "range_too_long": "The range spans more than the route allows.",
    "invalid_range": "The range is not valid for this read.",
    "invalid_group_by": "group_by is not a property this meter can group by.",
    # keys and scopes
    "unauthorized": "No API key, or an unknown or revoked one.",
    "insufficient_scope": "The key lacks the scope the route needs.",
    # idempotency
    "idempotency_conflict": "The Idempotency-Key was used for another request.",
    "idempotency_key_required": "This route needs an Idempotency-Key header.",
    # events
    "all_events_rejected": "Every event of the batch was rejected; details hold one error per event.",
    "invalid_event": "An event breaks a rule (per-event code in details).",
    "missing_field": "A required field is missing.",
    "unknown_customer": "An event names a customer that does not exist (per event, in ingest answers).",
    "unknown_meter": "An event names a meter that does not exist (per event, in ingest answers).",
    "event_not_found": "No event with this transaction_id for this customer.",
    # catalog
    "customer_not_found": "No customer with this external id.",
    "customer_exists": "A customer with this external id exists.",
    "customer_conflict": "The customer changed meanwhile; read it and retry.",
    "customer_archived": "The customer is archived: it takes no new usage or subscription.",
    "meter_not_found": "No meter with this code.",
    "meter_exists": "A meter with this code exists.",
    "plan_not_found": "No plan (or plan version) with this code.",
    "plan_exists": "A plan with this code exists.",
    "plan_conflict": "The plan kept changing while a version was published; retry.",
    "incompatible_plan": "The plan version cannot replace the current one.",
    "currency_mismatch": "The currencies of customer, plan or amount differ.",
    "pricing_error": "The prices do not form a valid price list.",
    "charge_needs_sum_meter": "A percentage or dynamic charge needs a meter that sums a property.",
    "advance_not_supported": "A charge billed in advance needs another model, meter or fewer options.",
    "filter_not_grouped": "A charge filter names a property its meter does not group by.",
    "invalid_trial": "The trial settings are not valid.",
    "subscription_not_found": "No subscription with this id.",
    "subscription_overlap": "Another subscription already charges the meter or plan then (see details).",
    "subscription_conflict": "The subscription changed meanwhile; read it and retry.",
    "subscription_canceled": "A canceled subscription accepts no changes.",
    "subscription_not_started": "The subscription has not started at that time.",
    "invalid_change_time": "The change time is outside the period, or too soon for advance charges.",
    "invalid_start_time": "A plan billing in advance cannot start before the subscription is made.",
    # invoices and billing runs
    "invoice_not_found": "No invoice with this id.",
    "invoice_not_rated": "The invoice has no rating to explain yet.",
    "invoice_not_paid": "The invoice is not paid.",
    "invoice_void": "The invoice is void.",
    "invoice_conflict": "The invoice changed meanwhile; retry.",
    "correction_unbillable": "The correction would bring a line to 0 because its usage cannot be billed.",
    "billing_run_not_found": "No billing run with this id.",
    "billing_run_locked": "Another billing run holds the lock.",
    "invalid_run_time": "The run's as-of time is in the future or malformed.",
    # one-off charges
    "one_off_amount_required": "A one-off charge needs amount_minor, or quantity and unit_price (not both).",
    "amount_not_positive": "The amount must be more than zero.",
    "amount_too_large": "The amount is over what one charge may ask.",
    "description_required": "The description is blank.",
    "description_too_long": "The description is over its length limit.",
    "no_active_subscription": "No active subscription will bill another invoice; invoice the charge now.",
    "one_off_charge_not_found": "No one-off charge with this id for this customer.",
    "one_off_charge_invoiced": "The charge is on an invoice already; correct it with a credit note.",
    "one_off_charge_void": "The charge is void already.",
    "one_off_conflict": "The charge changed meanwhile; retry.",
    # voids and amends of events
    "event_already_voided": "The event is voided already.",
    "event_not_accepted": "Only an accepted event can be voided or amended.",
    "event_not_counted_yet": "The event is accepted but not counted yet; retry in a few minutes.",
    "event_billed_in_advance": "Billed in advance, or an amend's copy would be; credit the invoice.",
    "event_too_old_to_void": "The event is past the late-event limit; credit the invoice instead.",
    "event_void_conflict": "The event kept changing while it was voided; retry.",
    "event_void_amount_limits": "The customer's limits count the meter's amount; credit the invoice instead.",
    "amend_changes_nothing": "The amend gives the same properties and timestamp as the event.",
    "amend_over_limit": "The corrected event would take its period's usage past the hard cap.",
    # backfills
    "backfill_not_found": "No backfill with this id.",
    "backfill_not_open": "The backfill is committed or cancelled: it takes no events, no cancel.",
    "backfill_cancelled": "The backfill was cancelled; it cannot be committed.",
    "backfill_conflict": "The backfill changed meanwhile; retry.",
    "backfill_range_reversed": "A backfill's end is not after its start.",
    "backfill_range_in_future": "A backfill's range reaches into the future.",
    "backfill_range_too_old": "A backfill's range starts before 00:00 UTC of the date 400 days ago.",
    "backfill_replace_whole_hours": "mode replace needs start and end on whole hours.",
    "backfill_meter_in_advance": "A customer's plan charges the meter in advance in the range.",
    "backfill_too_many_events": "The backfill would hold more than 5,000 events; open another one.",
    "backfill_not_committed": "Only a committed backfill can be reverted.",
    "backfill_superseded": "A later replace backfill stands over this one: revert it first.",
    "backfill_range_busy": "A backfill over the same range is being committed or reverted; wait.",
    "timestamp_outside_backfill": "The event's timestamp is outside the backfill's range.",
    "customer_not_in_backfill": "The event's customer is not one of the backfill's.",
    "meter_not_in_backfill": "The event's meter is not one of the backfill's.",
    "event_id_stored_under_other_meter": "The transaction_id belongs to a stored event of another meter.",
    "backfill_event_ids_taken": "Held events' ids belong to stored events of another meter (see details).",
    # credit notes, void and regenerate
    "invoice_not_finalized": "The invoice is a draft; it can still be recomputed, not credited or voided.",
    "invoice_not_creditable": "A top-up invoice is not credited (it bought credit).",
    "stripe_tax_pending": (
        "The invoice's tax is computed by Stripe Tax and not recorded yet; credit it after invoice.finalized."
    ),
    "invoice_line_not_found": "The invoice has no line with this line_id.",
    "credit_note_not_found": "No credit note with this id.",
    "credit_note_line_amount_required": "Each credited line needs amount_minor or quantity (one of the two).",
    "credit_note_lines_required": "lines is empty; leave it out to credit the whole invoice.",
    "credit_note_line_repeated": "A line is named twice in one credit note.",
    "credit_note_exceeds_creditable": (
        "More than the line or the invoice still has to credit (the message says what is left)."
    ),
    "refund_exceeds_refundable": (
        "More than the payment still has refundable, or than the credit balance left to pay out (the message"
        " says how much)."
    ),
    "dispute_exceeds_refundable": "More than the payment still has to dispute (the message says how much).",
    "credit_note_split_mismatch": (
        "The credit, refund and out-of-band amounts do not add up to the part already paid."
    ),
    "credit_note_conflict": "The invoice kept changing while the credit note was written; retry.",
    "correction_too_large": (
        "409: a correction after the end needs more writes than one transaction holds; nothing was written."
    ),
    "line_not_creditable": "The line charges nothing; only a line with a positive amount is credited.",
    "line_has_no_quantity": "The line has no quantity; credit it by amount_minor.",
    "quantity_not_positive": "The quantity must be more than zero.",
    "invoice_has_payments": "The invoice received a payment; credit it instead of voiding it.",
    "invoice_has_credit_notes": "The invoice has credit notes; credit the rest instead of voiding it.",
    "invoice_has_adjustments": (
        "Late differences of the invoice are recorded (pending for the next invoice, billed on another, "
        "settled by a credit note or given back to the credit grants: details name what carries each); "
        "credit it instead."
    ),
    "invoice_not_voidable": "Top-up and correction invoices are not voided.",
    "invoice_not_recomputable": (
        "Only a usage or opening invoice without credit applied is recomputed; use same_lines."
    ),
    # coupons, discounts and taxes
    "coupon_amount_required": "A coupon needs percent_off, or amount_off_minor and currency.",
    "currency_required": "A fixed amount needs its currency.",
    "currency_not_allowed": "A percentage coupon has no currency.",
    "duration_periods_required": "A repeating coupon needs duration_periods.",
    "duration_periods_out_of_range": "duration_periods is outside 1 to 1200.",
    "duration_periods_not_allowed": "Only a repeating coupon takes duration_periods.",
    "coupon_not_found": "No coupon with this id.",
    "coupon_archived": "The coupon is archived.",
    "discount_target_required": "A discount needs one target: a customer, a subscription or a plan version.",
    "subscription_customer_mismatch": "The subscription belongs to another customer.",
    "discount_not_found": "No discount with this id.",
    "discount_removed": "The discount is removed already.",
    "discount_conflict": "The coupon, discount or tax rate changed meanwhile; retry.",
    "plan_version_not_found": "No such version of the plan.",
    "state_needs_country": "A state needs its country.",
    "tax_rate_target_required": "A tax rate needs a country, a plan_code, or both.",
    "tax_rate_not_found": "No tax rate with this id.",
    "tax_rate_archived": "The tax rate is archived already.",
    # ledger
    "credit_grant_not_found": "No credit grant with this id.",
    "credit_grant_not_active": "The grant is voided or expired.",
    "credit_grant_empty": "The grant has nothing left to void.",
    "credit_grant_changed": "The grant changed meanwhile; retry.",
    "grant_expired": "The grant's expiry is not after its start.",
    "cash_would_go_negative": "The operation would take the cash balance below zero.",
    "adjustment_direction_invalid": "The adjustment's direction does not fit its reason.",
    "ledger_conflict": "The balance changed meanwhile; retry with the same Idempotency-Key.",
    "payment_not_found": "No payment with this id.",
    "payment_id_required": "This refund needs a payment id.",
    "payment_invoice_mismatch": "The payment does not belong to the invoice.",
    "payment_required": "The operation needs a recorded payment.",
    "dispute_not_found": "No dispute with this id.",
    "dispute_closed": "The dispute is already closed.",
    # operations
    "sweep_not_found": "No sweep with this id.",
    "unknown_check": "A named sweep check does not exist.",
    "invalid_window": "from must be before to.",
    "window_too_large": "The sweep window is longer than the API allows.",
    "queue_not_found": "No dead-letter queue with this name.",
    "queue_not_redrivable": "The dead-letter queue has no source queue to send its messages back to.",
    # outgoing webhooks
    "webhook_endpoint_not_found": "No webhook endpoint with this id.",
    "webhook_event_not_found": "No webhook event with this id.",
    "invalid_url": "The endpoint URL is not an absolute http(s) URL, or it carries credentials.",
    "url_not_https": "The endpoint URL must use https (http only to a loopback host on the local stage).",
    "url_address_refused": "The endpoint's host resolves to an address that is not public.",
    "url_unresolvable": "The endpoint's host does not resolve.",
    "resend_target_required": "A resend names either event_id or failed_since.",
    "stripe_event_not_found": "No stored Stripe event with this id.",
    "invalid_event_id": "The Stripe event id is malformed.",
    "invalid_signature": "The Stripe-Signature header is missing or does not match.",
    "invalid_payload": "The signed body is not a Stripe event.",
    "stripe_not_configured": "Stripe is not configured.",
    # usage limits and entitlements
    "limit_aggregation_unsupported": "Limits apply to count and sum meters only.",
    "amount_limit_unsupported": "An amount cap or spend alert on a price not rated exactly per event.",
    "limit_empty": "A meter listed in the limits has no cap and no alert.",
    "soft_cap_above_hard_cap": "The soft cap is above the hard cap.",
    "duplicate_meter": "A meter is listed twice in the limits.",
    "duplicate_alert": "An alert level is listed twice for one meter.",
    "duplicate_feature": "A feature is listed twice.",
    "feature_incomplete": "A feature lacks what its kind needs (metered: meter_code, limit; static: value).",
    "feature_not_found": "The customer has no such feature.",
    "feature_not_metered": "Grants raise metered features only.",
    "invalid_expiry": "The expiry is not after now.",
    "limits_conflict": "The customer's limits kept changing; retry.",
    # the service
    "not_found": "The resource does not exist.",
    "conflict": "The request conflicts with the current state.",
    "not_ready": "A dependency or the configuration is not ready.",
    "unavailable": "Storage is unavailable; retry later.",
    "temporarily_unavailable": "The service is busy; retry later.",
    "internal_error": "Something went wrong on our side (reported with the request id).",
}

ErrorType = Literal[
    "invalid_request_error", "authentication_error", "permission_error", "api_error", "idempotency_error"
]


class ErrorDetail(BaseModel):
    """One problem among several: a field of the body, an event of a batch, a failed check (``code``,
    ``message``, ``param``), or what the request collides with (``subscription_overlap`` names the
    subscription already charging the meter or plan, and when)."""

    model_config = ConfigDict(extra="allow")

    code: str | None = Field(
        default=None, description="Machine-readable code of this problem.", examples=["missing_field"]
    )
    message: str | None = Field(
        default=None, description="What is wrong, in words.", examples=["'code' is required."]
    )
    param: str | None = Field(
        default=None, description="The field at fault, as a path.", examples=["events.0.code"]
    )


class ErrorObject(BaseModel):
    """What went wrong: ``code`` is stable and machine-readable, ``message`` is for people."""

    model_config = ConfigDict(extra="forbid")

    type: ErrorType = Field(description="The family of the error.")
    code: str = Field(
        description="Machine-readable and stable. Known codes:\n"
        + "\n".join(f"- `{code}`: {meaning}" for code, meaning in ERROR_CODES.items()),
        examples=["customer_not_found"],
    )
    message: str = Field(description="For people; may change.", examples=["No customer 'acme'."])
    param: str | None = Field(default=None, description="The input at fault, when there is one.")
    details: list[ErrorDetail] | None = Field(default=None, description="Per-item problems, when several.")
    request_id: str | None = Field(description="Quote it to support.", examples=["c0ffee00-1d2b-4a7e-9f00"])


class ErrorResponse(BaseModel):
    """The body of every 4xx/5xx answer."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "customer_not_found",
                        "message": "No customer 'acme'.",
                        "param": "customer_id",
                        "request_id": "c0ffee00-1d2b-4a7e-9f00-5e1a7c3b2d10",
                    }
                }
            ]
        },
    )

    error: ErrorObject
