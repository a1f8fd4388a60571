"""Every route of the API as a builder of the ``Operation`` that calls it (no I/O here).

Builders declared with ``@route`` have no body of their own: their keyword parameters are the route's
inputs, and the decorator sorts them into path parameters, the query or the JSON body, names ending in
``_`` losing it (``from_`` -> ``from``). ``None`` means "not sent". The test
``tests/client/test_routes_match_openapi.py`` checks every builder against docs/openapi.json: path and
method exist, the success answer is the model named here, and the parameters are the query's or the
body schema's fields.
"""
# mypy: disable-error-code="empty-body"

from __future__ import annotations

import functools
import inspect
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from pydantic import BaseModel

from neruba_client import models as m
from neruba_client._core import ListOperation, Operation, new_idempotency_key

F = TypeVar("F", bound=Callable[..., Any])

Time = datetime | str
Number = Decimal | int | str
InvoiceStatus = Literal["draft", "finalized", "paid", "payment_failed", "void"]


@dataclass(frozen=True, slots=True)
class RouteSpec:
    name: str
    method: str
    path: str
    response: type[BaseModel]
    body: str | None  # the component name of the request body, if any
    idempotency_key: bool  # the route takes an Idempotency-Key header
    listing: bool
    retry_safe: bool


ROUTES: dict[str, RouteSpec] = {}


def route(
    method: str,
    path: str,
    response: type[BaseModel],
    *,
    body: str | None = None,
    idempotency_key: bool = False,
    listing: bool = False,
    retry_safe: bool = False,
    custom: bool = False,
) -> Callable[[F], F]:
    def register(build: F) -> F:
        spec = RouteSpec(
            build.__name__,
            method,
            path,
            response,
            body,
            idempotency_key,
            listing,
            retry_safe or method == "GET",
        )
        ROUTES[spec.name] = spec
        if custom:
            return build
        signature = inspect.signature(build)

        @functools.wraps(build)
        def make(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            operation = operation_for(spec, dict(bound.arguments))
            return ListOperation(operation) if listing else operation

        return make  # type: ignore[return-value]

    return register


def operation_for(spec: RouteSpec, arguments: dict[str, Any]) -> Operation[Any]:
    key = arguments.pop("idempotency_key", None)
    path = spec.path
    for name in re.findall(r"{(\w+)}", spec.path):
        path = path.replace("{" + name + "}", quote(str(arguments.pop(name)), safe=""))
    fields = {name.rstrip("_"): _jsonable(v) for name, v in arguments.items() if v is not None}
    if spec.idempotency_key and key is None:
        key = new_idempotency_key()
    return Operation(
        spec.method,
        path,
        spec.response,
        params={} if spec.body else fields,
        body=fields if spec.body else None,
        idempotency_key=key,
        retry_safe=spec.retry_safe or key is not None,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# --- health ----------------------------------------------------------------------------------------


@route("GET", "/health", m.Health)
def health() -> Operation[m.Health]: ...


@route("GET", "/ready", m.Ready)
def ready() -> Operation[m.Ready]: ...


# --- customers -------------------------------------------------------------------------------------


@route("GET", "/v1/customers", m.CustomerList, listing=True)
def list_customers(
    *, limit: int | None = None, starting_after: str | None = None
) -> ListOperation[m.CustomerList, m.CustomerView]: ...


@route("POST", "/v1/customers", m.CustomerView, body="CustomerCreate", idempotency_key=True)
def create_customer(
    *,
    external_id: str,
    name: str,
    currency: str,
    email: str | None = None,
    timezone: str | None = None,
    metadata: Mapping[str, str] | None = None,
    stripe_customer_id: str | None = None,
    balance_low_threshold_minor: int | None = None,
    invoice_threshold_minor: int | None = None,
    created_at: Time | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.CustomerView]: ...


@route("GET", "/v1/customers/{customer_id}", m.CustomerView)
def get_customer(customer_id: str) -> Operation[m.CustomerView]: ...


@route("GET", "/v1/customers/{customer_id}/limits", m.UsageLimits)
def get_customer_limits(customer_id: str) -> Operation[m.UsageLimits]: ...


@route("PUT", "/v1/customers/{customer_id}/limits", m.UsageLimits, body="UsageLimitsIn", idempotency_key=True)
def put_customer_limits(
    customer_id: str,
    *,
    meters: Sequence[Mapping[str, Any]] | None = None,
    features: Sequence[Mapping[str, Any]] | None = None,
    interval: str | None = None,
    period_anchor: Time | None = None,
    spend_alerts_minor: Sequence[int] | None = None,
    balance_alerts_minor: Sequence[int] | None = None,
    reason: str | None = None,
    ticket: str | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.UsageLimits]:
    """Replace every usage limit of the customer (hard and soft caps in units or amount, alerts on usage,
    spend and credit balance, entitlements)."""


@route("GET", "/v1/customers/{customer_id}/entitlements", m.EntitlementList)
def list_entitlements(customer_id: str) -> Operation[m.EntitlementList]: ...


@route("GET", "/v1/customers/{customer_id}/entitlements/{feature}", m.Entitlement)
def get_entitlement(customer_id: str, feature: str) -> Operation[m.Entitlement]: ...


@route(
    "POST",
    "/v1/customers/{customer_id}/entitlements/{feature}/grants",
    m.EntitlementGrant,
    body="EntitlementGrantIn",
    idempotency_key=True,
)
def grant_entitlement(
    customer_id: str,
    feature: str,
    *,
    amount: Number,
    reason: str,
    expires_at: Time | None = None,
    ticket: str | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.EntitlementGrant]:
    """Raise a metered feature's limit by ``amount`` until ``expires_at`` (default: the period's end);
    the API requires an Idempotency-Key."""


@route("PATCH", "/v1/customers/{customer_id}", m.CustomerView, body="CustomerUpdate")
def update_customer(
    customer_id: str,
    *,
    name: str | None = None,
    email: str | None = None,
    timezone: str | None = None,
    metadata: Mapping[str, str] | None = None,
    stripe_customer_id: str | None = None,
    balance_low_threshold_minor: int | None = None,
    invoice_threshold_minor: int | None = None,
) -> Operation[m.CustomerView]: ...


@route("POST", "/v1/customers/{customer_id}/archive", m.CustomerView, body="CustomerArchive", retry_safe=True)
def archive_customer(
    customer_id: str, *, reason: str | None = None, ticket: str | None = None
) -> Operation[m.CustomerView]:
    """Archive a customer (admin key): its active subscriptions end now, its new events are refused.
    Archiving again answers the customer unchanged, so a retry is safe."""


@route("GET", "/v1/customers/{customer_id}/balance", m.Balance)
def get_balance(customer_id: str) -> Operation[m.Balance]: ...


@route("GET", "/v1/customers/{customer_id}/credit-grants", m.CreditGrantList, listing=True)
def list_credit_grants(
    customer_id: str, *, limit: int | None = None, starting_after: str | None = None
) -> ListOperation[m.CreditGrantList, m.CreditGrant]: ...


@route("GET", "/v1/customers/{customer_id}/ledger", m.PostingList, listing=True)
def list_postings(
    customer_id: str, *, limit: int | None = None, starting_after: str | None = None
) -> ListOperation[m.PostingList, m.Posting]: ...


@route("GET", "/v1/customers/{customer_id}/subscriptions", m.SubscriptionList, listing=True)
def list_customer_subscriptions(customer_id: str) -> ListOperation[m.SubscriptionList, m.Subscription]: ...


@route("GET", "/v1/customers/{customer_id}/upcoming-invoice", m.UpcomingInvoice)
def get_upcoming_invoice(customer_id: str) -> Operation[m.UpcomingInvoice]: ...


@route("GET", "/v1/customers/{customer_id}/usage", m.Usage)
def get_usage(
    customer_id: str,
    *,
    meter: str,
    from_: Time,
    to: Time,
    granularity: Literal["hour", "day", "period"] | None = None,
    group_by: str | None = None,
) -> Operation[m.Usage]: ...


# --- events ----------------------------------------------------------------------------------------


def as_event(event: m.Event | Mapping[str, Any]) -> m.Event:
    """An event with a transaction id: a fresh one when the caller gave none, so that every retry of
    the batch sends the same id and the API counts the event once."""
    if isinstance(event, m.Event):
        return event
    data = dict(event)
    if not data.get("transaction_id"):
        data["transaction_id"] = str(uuid.uuid4())
    return m.Event.model_validate(data)


@route("POST", "/v1/events", m.IngestResponse, body="IngestRequest", retry_safe=True, custom=True)
def send_events(events: Sequence[m.Event | Mapping[str, Any]]) -> Operation[m.IngestResponse]:
    """Send 1 to 100 events (``POST /v1/events``). Retried safely: each event keeps its transaction id."""
    batch = m.IngestRequest(events=[as_event(e) for e in events])
    return Operation(
        "POST",
        "/v1/events",
        m.IngestResponse,
        body=batch.model_dump(mode="json", by_alias=True, exclude_none=True),
        retry_safe=True,
    )


@route("GET", "/v1/events/{transaction_id}", m.StoredEvent)
def get_event(transaction_id: str, *, customer_id: str) -> Operation[m.StoredEvent]: ...


@route("GET", "/v1/events", m.EventList, listing=True)
def list_events(
    *,
    customer_id: str,
    from_: Time,
    to: Time,
    meter: str | None = None,
    limit: int | None = None,
    starting_after: str | None = None,
) -> ListOperation[m.EventList, m.StoredEvent]:
    """A customer's counted events whose timestamp is in ``[from_, to)`` (at most 31 days), of one
    ``meter`` or all, by hour of their timestamp then meter; each with its outcomes."""


@route(
    "POST",
    "/admin/events/{transaction_id}/void",
    m.EventVoidResult,
    body="EventVoidIn",
    idempotency_key=True,
)
def void_event(
    transaction_id: str,
    *,
    customer_id: str,
    reason: str,
    ticket: str,
    idempotency_key: str | None = None,
) -> Operation[m.EventVoidResult]:
    """Void an accepted event: its usage stops counting; an invoiced period is corrected as a late event
    would correct it."""


@route(
    "POST",
    "/admin/events/{transaction_id}/amend",
    m.EventVoidResult,
    body="EventAmendIn",
    idempotency_key=True,
)
def amend_event(
    transaction_id: str,
    *,
    customer_id: str,
    reason: str,
    ticket: str,
    properties: Mapping[str, Any] | None = None,
    timestamp: Time | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.EventVoidResult]:
    """Void an accepted event and count a corrected copy (other properties or timestamp) in its place."""


@route("GET", "/v1/ingest/outcomes", m.OutcomeCounts)
def get_outcomes(
    *, from_: Time, to: Time, granularity: Literal["minute", "hour"] | None = None
) -> Operation[m.OutcomeCounts]: ...


# --- meters and plans ------------------------------------------------------------------------------


@route("GET", "/v1/meters", m.MeterList, listing=True)
def list_meters(
    *, limit: int | None = None, starting_after: str | None = None
) -> ListOperation[m.MeterList, m.MeterView]: ...


@route("POST", "/v1/meters", m.MeterView, body="Meter", idempotency_key=True)
def create_meter(
    *,
    code: str,
    name: str,
    aggregation: Literal["count", "sum", "max", "min", "average", "unique_count", "latest", "weighted_sum"],
    field: str | None = None,
    filters: Mapping[str, str] | None = None,
    group_by: Sequence[str] | None = None,
    allow_negative: bool | None = None,
    carry_over: bool | None = None,
    created_at: Time | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.MeterView]: ...


@route("GET", "/v1/meters/{code}", m.MeterView)
def get_meter(code: str) -> Operation[m.MeterView]: ...


@route("GET", "/v1/plans", m.PlanList, listing=True)
def list_plans(
    *, limit: int | None = None, starting_after: str | None = None
) -> ListOperation[m.PlanList, m.Plan]: ...


@route("POST", "/v1/plans", m.Plan, body="PlanCreate", idempotency_key=True)
def create_plan(
    *,
    code: str,
    name: str,
    currency: str,
    interval: str,
    charges: Sequence[Mapping[str, Any]] | None = None,
    fixed_fee: Mapping[str, Any] | None = None,
    minimum_commitment: Number | None = None,
    defaults: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.Plan]:
    """Create a plan; ``charges`` and ``fixed_fee`` follow ChargeIn/FixedFeeIn (prices as Decimal or text);
    ``defaults`` follows PlanDefaultsIn (limits, features, invoice threshold of its subscribers)."""


@route("GET", "/v1/plans/{plan_code}", m.Plan)
def get_plan(plan_code: str) -> Operation[m.Plan]: ...


@route("POST", "/v1/plans/{plan_code}/versions", m.PlanVersion, body="PlanVersionIn", idempotency_key=True)
def publish_plan_version(
    plan_code: str,
    *,
    name: str,
    currency: str,
    interval: str,
    charges: Sequence[Mapping[str, Any]] | None = None,
    fixed_fee: Mapping[str, Any] | None = None,
    minimum_commitment: Number | None = None,
    defaults: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.PlanVersion]: ...


@route("GET", "/v1/plans/{plan_code}/versions/{version}", m.PlanVersion)
def get_plan_version(plan_code: str, version: int) -> Operation[m.PlanVersion]: ...


# --- subscriptions ---------------------------------------------------------------------------------


@route("POST", "/v1/subscriptions", m.Subscription, body="SubscriptionCreate", idempotency_key=True)
def create_subscription(
    *,
    customer_id: str,
    plan_code: str,
    plan_version: int | None = None,
    start_at: Time | None = None,
    trial_end: Time | None = None,
    reason: str | None = None,
    ticket: str | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.Subscription]: ...


@route("GET", "/v1/subscriptions/{subscription_id}", m.Subscription)
def get_subscription(subscription_id: str) -> Operation[m.Subscription]: ...


@route("POST", "/v1/subscriptions/{subscription_id}/cancel", m.Subscription, body="Cancellation")
def cancel_subscription(
    subscription_id: str,
    *,
    at_period_end: bool | None = None,
    reason: str | None = None,
    ticket: str | None = None,
) -> Operation[m.Subscription]: ...


@route("POST", "/v1/subscriptions/{subscription_id}/change-plan", m.Subscription, body="PlanChange")
def change_plan(
    subscription_id: str,
    *,
    plan_code: str,
    plan_version: int | None = None,
    at: Time | None = None,
    reason: str | None = None,
    ticket: str | None = None,
) -> Operation[m.Subscription]: ...


# --- invoices --------------------------------------------------------------------------------------


@route("GET", "/v1/invoices", m.InvoiceList, listing=True)
def list_invoices(
    *,
    customer_id: str | None = None,
    status: InvoiceStatus | None = None,
    period_from: Time | None = None,
    period_to: Time | None = None,
    limit: int | None = None,
    starting_after: str | None = None,
) -> ListOperation[m.InvoiceList, m.Invoice]:
    """Invoices, newest period first: one customer's (``customer_id``, optionally one ``status``) or
    every customer's of one ``status``; ``period_from``/``period_to`` keep the periods starting in
    ``[period_from, period_to)``. Neither customer_id nor status is 400 ``filter_required``."""


@route("GET", "/v1/invoices/{invoice_id}", m.Invoice)
def get_invoice(invoice_id: str) -> Operation[m.Invoice]: ...


@route("GET", "/v1/invoices/{invoice_id}/explain", m.InvoiceExplanation)
def explain_invoice(invoice_id: str) -> Operation[m.InvoiceExplanation]: ...


@route("GET", "/v1/invoices/{invoice_id}/completeness", m.InvoiceCompleteness)
def invoice_completeness(invoice_id: str) -> Operation[m.InvoiceCompleteness]: ...


@route("GET", "/v1/invoices/{invoice_id}/credit-notes", m.CreditNoteList, listing=True)
def list_invoice_credit_notes(invoice_id: str) -> ListOperation[m.CreditNoteList, m.CreditNote]: ...


@route("GET", "/v1/credit-notes/{credit_note_id}", m.CreditNote)
def get_credit_note(credit_note_id: str) -> Operation[m.CreditNote]: ...


@route("GET", "/v1/credit-notes/{credit_note_id}/explain", m.CreditNoteExplanation)
def explain_credit_note(credit_note_id: str) -> Operation[m.CreditNoteExplanation]: ...


# --- operator routes (/admin, an admin key) --------------------------------------------------------


@route("GET", "/admin/audit", m.AuditRecordList, listing=True)
def list_audit(
    *, customer_id: str, limit: int | None = None, starting_after: str | None = None
) -> ListOperation[m.AuditRecordList, m.AuditRecord]: ...


@route("GET", "/admin/billing-runs", m.BillingRunList, listing=True)
def list_billing_runs(
    *, limit: int | None = None, starting_after: str | None = None
) -> ListOperation[m.BillingRunList, m.BillingRun]: ...


@route("POST", "/admin/billing-runs", m.BillingRun, body="BillingRunRequest", idempotency_key=True)
def create_billing_run(
    *,
    reason: str,
    at: Time | None = None,
    backfill: bool | None = None,
    customer_id: str | None = None,
    ticket: str | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.BillingRun]: ...


@route("GET", "/admin/billing-runs/{run_id}", m.BillingRun)
def get_billing_run(run_id: str) -> Operation[m.BillingRun]: ...


@route("POST", "/admin/credit-grants/{grant_id}/void", m.CreditGrant, body="GrantVoid", idempotency_key=True)
def void_credit_grant(
    grant_id: str, *, reason: str, ticket: str | None = None, idempotency_key: str | None = None
) -> Operation[m.CreditGrant]: ...


@route("PUT", "/admin/customers/{customer_id}/auto-top-up", m.AutoTopUp, body="AutoTopUpRuleIn")
def put_auto_top_up(
    customer_id: str,
    *,
    amount_minor: int,
    threshold_minor: int,
    reason: str,
    currency: str | None = None,
    enabled: bool | None = None,
    ticket: str | None = None,
) -> Operation[m.AutoTopUp]: ...


@route(
    "POST",
    "/admin/customers/{customer_id}/balance-adjustments",
    m.BalanceAdjusted,
    body="BalanceAdjustment",
    idempotency_key=True,
)
def adjust_balance(
    customer_id: str,
    *,
    amount_minor: int,
    reason: str,
    reason_code: Literal["goodwill", "correction", "refund", "dispute"],
    currency: str | None = None,
    ticket: str | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.BalanceAdjusted]: ...


@route(
    "POST",
    "/admin/customers/{customer_id}/credit-grants",
    m.CreditGrant,
    body="GrantCreate",
    idempotency_key=True,
)
def grant_credits(
    customer_id: str,
    *,
    amount_minor: int,
    kind: Literal["purchased", "promotional"],
    reason: str,
    currency: str | None = None,
    effective_at: Time | None = None,
    expires_at: Time | None = None,
    meter_codes: Sequence[str] | None = None,
    priority: int | None = None,
    ticket: str | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.CreditGrant]: ...


@route(
    "POST", "/admin/customers/{customer_id}/disputes", m.Dispute, body="DisputeCreate", idempotency_key=True
)
def create_dispute(
    customer_id: str,
    *,
    amount_minor: int,
    reason: str,
    currency: str | None = None,
    invoice_id: str | None = None,
    payment_id: str | None = None,
    ticket: str | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.Dispute]: ...


@route("POST", "/admin/customers/{customer_id}/refunds", m.Refund, body="RefundCreate", idempotency_key=True)
def create_refund(
    customer_id: str,
    *,
    amount_minor: int,
    reason: str,
    currency: str | None = None,
    invoice_id: str | None = None,
    payment_id: str | None = None,
    credit_balance: bool | None = None,
    ticket: str | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.Refund]: ...


@route("POST", "/admin/disputes/{dispute_id}/close", m.Dispute, body="DisputeClose", idempotency_key=True)
def close_dispute(
    dispute_id: str,
    *,
    outcome: Literal["won", "lost"],
    reason: str,
    ticket: str | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.Dispute]: ...


@route(
    "POST", "/admin/invoices/{invoice_id}/rerun", m.InvoiceRerun, body="RerunRequest", idempotency_key=True
)
def rerun_invoice(
    invoice_id: str, *, reason: str, ticket: str | None = None, idempotency_key: str | None = None
) -> Operation[m.InvoiceRerun]: ...


@route(
    "POST",
    "/admin/customers/{customer_id}/one-off-charges",
    m.OneOffCharge,
    body="OneOffChargeCreate",
    idempotency_key=True,
)
def create_one_off_charge(
    customer_id: str,
    *,
    description: str,
    currency: str,
    mode: Literal["invoice_now", "next_invoice"],
    reason: str,
    amount_minor: int | None = None,
    quantity: Number | None = None,
    unit_price: Number | None = None,
    metadata: Mapping[str, str] | None = None,
    ticket: str | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.OneOffCharge]: ...


@route("GET", "/admin/customers/{customer_id}/one-off-charges", m.OneOffChargeList, listing=True)
def list_one_off_charges(
    customer_id: str, *, status: Literal["pending", "invoiced", "void"] | None = None
) -> ListOperation[m.OneOffChargeList, m.OneOffCharge]: ...


@route(
    "POST",
    "/admin/customers/{customer_id}/one-off-charges/{charge_id}/void",
    m.OneOffCharge,
    body="OneOffChargeVoid",
    idempotency_key=True,
)
def void_one_off_charge(
    customer_id: str,
    charge_id: str,
    *,
    reason: str,
    ticket: str | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.OneOffCharge]: ...


@route("POST", "/admin/backfills", m.BackfillView, body="BackfillCreate", idempotency_key=True)
def open_backfill(
    *,
    customer_ids: Sequence[str],
    meter_codes: Sequence[str],
    start: Time,
    end: Time,
    reason: str,
    mode: Literal["add", "replace"] | None = None,
    ticket: str | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.BackfillView]: ...


@route("GET", "/admin/backfills", m.BackfillList, listing=True)
def list_backfills(
    *, status: m.BackfillStatus | None = None
) -> ListOperation[m.BackfillList, m.BackfillView]: ...


@route("GET", "/admin/backfills/{backfill_id}", m.BackfillView)
def get_backfill(backfill_id: str) -> Operation[m.BackfillView]: ...


@route(
    "POST",
    "/admin/backfills/{backfill_id}/events",
    m.BackfillEventsResult,
    body="IngestRequest",
    retry_safe=True,
    custom=True,
)
def send_backfill_events(
    backfill_id: str, events: Sequence[m.Event | Mapping[str, Any]]
) -> Operation[m.BackfillEventsResult]:
    """Send 1 to 100 events into an open backfill. Retried safely: each event keeps its transaction id."""
    batch = m.IngestRequest(events=[as_event(e) for e in events])
    return Operation(
        "POST",
        f"/admin/backfills/{quote(backfill_id, safe='')}/events",
        m.BackfillEventsResult,
        body=batch.model_dump(mode="json", by_alias=True, exclude_none=True),
        retry_safe=True,
    )


@route("GET", "/admin/backfills/{backfill_id}/preview", m.BackfillPreview)
def preview_backfill(backfill_id: str) -> Operation[m.BackfillPreview]: ...


@route(
    "POST",
    "/admin/backfills/{backfill_id}/commit",
    m.BackfillView,
    body="BackfillAction",
    idempotency_key=True,
)
def commit_backfill(
    backfill_id: str, *, reason: str, ticket: str | None = None, idempotency_key: str | None = None
) -> Operation[m.BackfillView]: ...


@route(
    "POST",
    "/admin/backfills/{backfill_id}/cancel",
    m.BackfillView,
    body="BackfillAction",
    idempotency_key=True,
)
def cancel_backfill(
    backfill_id: str, *, reason: str, ticket: str | None = None, idempotency_key: str | None = None
) -> Operation[m.BackfillView]: ...


@route(
    "POST",
    "/admin/backfills/{backfill_id}/revert",
    m.BackfillView,
    body="BackfillAction",
    idempotency_key=True,
)
def revert_backfill(
    backfill_id: str, *, reason: str, ticket: str | None = None, idempotency_key: str | None = None
) -> Operation[m.BackfillView]: ...


@route(
    "POST",
    "/admin/invoices/{invoice_id}/credit-notes",
    m.CreditNote,
    body="CreditNoteCreate",
    idempotency_key=True,
)
def create_credit_note(
    invoice_id: str,
    *,
    reason: str,
    lines: Sequence[Mapping[str, Any]] | None = None,
    credit_amount_minor: int | None = None,
    refund_amount_minor: int | None = None,
    out_of_band_amount_minor: int | None = None,
    memo: str | None = None,
    ticket: str | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.CreditNote]: ...


@route(
    "POST", "/admin/invoices/{invoice_id}/void", m.InvoiceVoidResult, body="InvoiceVoid", idempotency_key=True
)
def void_invoice(
    invoice_id: str,
    *,
    reason: str,
    regenerate: Literal["same_lines", "recompute"] | None = None,
    ticket: str | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.InvoiceVoidResult]: ...


@route("POST", "/admin/coupons", m.Coupon, body="CouponCreate", idempotency_key=True)
def create_coupon(
    *,
    name: str,
    duration: Literal["once", "repeating", "forever"],
    reason: str,
    percent_off: Number | None = None,
    amount_off_minor: int | None = None,
    currency: str | None = None,
    duration_periods: int | None = None,
    ticket: str | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.Coupon]: ...


@route("GET", "/admin/coupons", m.CouponList, listing=True)
def list_coupons(
    *, limit: int | None = None, starting_after: str | None = None
) -> ListOperation[m.CouponList, m.Coupon]: ...


@route("GET", "/admin/coupons/{coupon_id}", m.Coupon)
def get_coupon(coupon_id: str) -> Operation[m.Coupon]: ...


@route("POST", "/admin/coupons/{coupon_id}/archive", m.Coupon, body="ArchiveRequest", idempotency_key=True)
def archive_coupon(
    coupon_id: str, *, reason: str, ticket: str | None = None, idempotency_key: str | None = None
) -> Operation[m.Coupon]: ...


@route("POST", "/admin/discounts", m.Discount, body="DiscountCreate", idempotency_key=True)
def create_discount(
    *,
    coupon_id: str,
    reason: str,
    customer_id: str | None = None,
    subscription_id: str | None = None,
    plan_code: str | None = None,
    plan_version: int | None = None,
    ticket: str | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.Discount]: ...


@route("GET", "/admin/discounts", m.DiscountList, listing=True)
def list_discounts(
    *,
    customer_id: str | None = None,
    plan_code: str | None = None,
    plan_version: int | None = None,
    limit: int | None = None,
    starting_after: str | None = None,
) -> ListOperation[m.DiscountList, m.Discount]:
    """A customer's discounts (``customer_id``) or a plan version's (``plan_code`` and ``plan_version``);
    naming both is 400 ``conflicting_filters``."""


@route("GET", "/admin/discounts/{discount_id}", m.Discount)
def get_discount(discount_id: str) -> Operation[m.Discount]: ...


@route(
    "POST", "/admin/discounts/{discount_id}/remove", m.Discount, body="ArchiveRequest", idempotency_key=True
)
def remove_discount(
    discount_id: str, *, reason: str, ticket: str | None = None, idempotency_key: str | None = None
) -> Operation[m.Discount]: ...


@route("POST", "/admin/tax-rates", m.TaxRate, body="TaxRateCreate", idempotency_key=True)
def create_tax_rate(
    *,
    display_name: str,
    percentage: Number,
    inclusive: bool,
    reason: str,
    country: str | None = None,
    state: str | None = None,
    plan_code: str | None = None,
    ticket: str | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.TaxRate]: ...


@route("GET", "/admin/tax-rates", m.TaxRateList, listing=True)
def list_tax_rates(
    *, limit: int | None = None, starting_after: str | None = None
) -> ListOperation[m.TaxRateList, m.TaxRate]: ...


@route(
    "POST", "/admin/tax-rates/{tax_rate_id}/archive", m.TaxRate, body="ArchiveRequest", idempotency_key=True
)
def archive_tax_rate(
    tax_rate_id: str, *, reason: str, ticket: str | None = None, idempotency_key: str | None = None
) -> Operation[m.TaxRate]: ...


@route("GET", "/admin/customers/{customer_id}/tax-jurisdiction", m.TaxJurisdiction)
def get_tax_jurisdiction(customer_id: str) -> Operation[m.TaxJurisdiction]: ...


@route(
    "PUT",
    "/admin/customers/{customer_id}/tax-jurisdiction",
    m.TaxJurisdiction,
    body="JurisdictionSet",
    idempotency_key=True,
)
def set_tax_jurisdiction(
    customer_id: str,
    *,
    country: str,
    reason: str,
    state: str | None = None,
    provider: Literal["neruba", "stripe_tax"] | None = None,
    ticket: str | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.TaxJurisdiction]: ...


@route("GET", "/admin/stripe-events", m.StripeEventList, listing=True)
def list_stripe_events(
    *,
    type_: str | None = None,
    status: Literal["received", "processed", "ignored", "failed", "deferred", "parked"] | None = None,
    from_: Time | None = None,
    to: Time | None = None,
    limit: int | None = None,
    starting_after: str | None = None,
) -> ListOperation[m.StripeEventList, m.StripeEvent]: ...


@route("GET", "/admin/stripe-events/{event_id}", m.StripeEvent)
def get_stripe_event(event_id: str) -> Operation[m.StripeEvent]: ...


@route(
    "POST",
    "/admin/stripe-events/{event_id}/replay",
    m.StripeReplay,
    body="ReplayRequest",
    idempotency_key=True,
)
def replay_stripe_event(
    event_id: str, *, reason: str, ticket: str | None = None, idempotency_key: str | None = None
) -> Operation[m.StripeReplay]: ...


@route("GET", "/admin/dlqs", m.DeadLetterQueueList, listing=True)
def list_dlqs() -> ListOperation[m.DeadLetterQueueList, m.DeadLetterQueue]: ...


@route("GET", "/admin/alarms", m.AlarmList, listing=True)
def list_alarms() -> ListOperation[m.AlarmList, m.Alarm]: ...


@route("POST", "/admin/dlqs/{name}/redrive", m.DlqRedrive, body="RedriveRequest", idempotency_key=True)
def redrive_dlq(
    name: str, *, reason: str, ticket: str | None = None, idempotency_key: str | None = None
) -> Operation[m.DlqRedrive]: ...


@route("GET", "/admin/sweeps", m.SweepList, listing=True)
def list_sweeps(
    *, limit: int | None = None, starting_after: str | None = None
) -> ListOperation[m.SweepList, m.SweepSummary]: ...


@route("POST", "/admin/sweeps", m.Sweep, body="SweepRequest")
def create_sweep(
    *, checks: Sequence[str] | None = None, from_: Time | None = None, to: Time | None = None
) -> Operation[m.Sweep]: ...


@route("GET", "/admin/sweeps/{sweep_id}", m.Sweep)
def get_sweep(sweep_id: str) -> Operation[m.Sweep]: ...


# --- outgoing webhooks (docs/webhooks.md) ----------------------------------------------------------

WebhookEventType = Literal[
    "customer.created",
    "customer.updated",
    "invoice.created",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.updated",
    "credit_grant.created",
    "credit_grant.expired",
    "credit_grant.voided",
    "credit_grant.depleted",
    "balance.low",
    "alert.triggered",
    "subscription.created",
    "subscription.updated",
    "subscription.canceled",
    "subscription.trial_will_end",
    "billing_run.failed",
    "stripe_sync.failed",
    "ingest.batch_failed",
    "dlq.message_parked",
]


@route("GET", "/admin/webhook-endpoints", m.EndpointList, listing=True)
def list_webhook_endpoints(
    *, limit: int | None = None, starting_after: str | None = None
) -> ListOperation[m.EndpointList, m.Endpoint]:
    """Webhook endpoints, oldest first."""


@route("POST", "/admin/webhook-endpoints", m.Endpoint, body="EndpointCreate", idempotency_key=True)
def create_webhook_endpoint(
    *,
    url: str,
    enabled_events: Sequence[WebhookEventType],
    description: str | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.Endpoint]:
    """Register an endpoint; the answer's ``secret`` (``whsec_...``) is shown in it, and again to a retry
    with the same ``idempotency_key`` while the secret still signs."""


@route("GET", "/admin/webhook-endpoints/{endpoint_id}", m.Endpoint)
def get_webhook_endpoint(endpoint_id: str) -> Operation[m.Endpoint]: ...


@route("POST", "/admin/webhook-endpoints/{endpoint_id}", m.Endpoint, body="EndpointUpdate")
def update_webhook_endpoint(
    endpoint_id: str,
    *,
    url: str | None = None,
    enabled_events: Sequence[WebhookEventType] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> Operation[m.Endpoint]: ...


@route("DELETE", "/admin/webhook-endpoints/{endpoint_id}", m.EndpointDeleted)
def delete_webhook_endpoint(endpoint_id: str) -> Operation[m.EndpointDeleted]: ...


@route(
    "POST",
    "/admin/webhook-endpoints/{endpoint_id}/rotate-secret",
    m.Endpoint,
    body="SecretRotation",
    idempotency_key=True,
)
def rotate_webhook_secret(
    endpoint_id: str, *, overlap_seconds: int | None = None, idempotency_key: str | None = None
) -> Operation[m.Endpoint]:
    """A new secret (in the answer, and again to a retry with the same ``idempotency_key`` while it
    still signs); the current one keeps signing next to it for
    ``overlap_seconds`` (the API's default when not given)."""


@route("GET", "/admin/webhook-events", m.WebhookEventList, listing=True)
def list_webhook_events(
    *,
    customer_id: str,
    type_: WebhookEventType | None = None,
    from_: Time | None = None,
    to: Time | None = None,
    limit: int | None = None,
    starting_after: str | None = None,
) -> ListOperation[m.WebhookEventList, m.WebhookEventSummary]:
    """A customer's webhook events, newest sequence number first (``get_webhook_event`` for one event's
    deliveries and attempts)."""


@route("GET", "/admin/webhook-events/{event_id}", m.EventView)
def get_webhook_event(event_id: str) -> Operation[m.EventView]: ...


@route("POST", "/admin/webhook-resends", m.ResendResult, body="ResendRequest", idempotency_key=True)
def resend_webhooks(
    *,
    event_id: str | None = None,
    failed_since: Time | None = None,
    endpoint_id: str | None = None,
    reason: str | None = None,
    ticket: str | None = None,
    idempotency_key: str | None = None,
) -> Operation[m.ResendResult]:
    """Put deliveries back on the queue: one event's (``event_id``) or every delivery that failed since
    ``failed_since``, optionally only ``endpoint_id``'s; ``reason`` and ``ticket`` go to the audit record."""
