"""Backfills: the operator's request bodies and what the routes answer (docs/billing.md, "Backfills")."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from neruba.models.events import EventError
from neruba.models.fields import CODE_PATTERN, EXTERNAL_ID_PATTERN, AuditedReason, AwareInstant, TicketText
from neruba.models.views import UnbillableLine

MAX_BACKFILL_CUSTOMERS = 100
MAX_BACKFILL_METERS = 20
MAX_BACKFILL_DAYS = 400  # how far back a backfill's range may start
MAX_BACKFILL_EVENTS = 5000  # what one commit counts within one request
CustomerRef = Annotated[str, Field(pattern=EXTERNAL_ID_PATTERN)]
MeterRef = Annotated[str, Field(pattern=CODE_PATTERN)]


class BackfillCreate(BaseModel):
    """``POST /admin/backfills``: open a backfill for some customers, meters and a time range."""

    model_config = ConfigDict(extra="forbid")

    customer_ids: list[CustomerRef] = Field(
        min_length=1,
        max_length=MAX_BACKFILL_CUSTOMERS,
        description="The customers (external ids) whose events the backfill may hold.",
    )
    meter_codes: list[MeterRef] = Field(
        min_length=1, max_length=MAX_BACKFILL_METERS, description="The meters the backfill may hold."
    )
    start: AwareInstant = Field(
        description=f"The range's start: at or after 00:00 UTC of the date {MAX_BACKFILL_DAYS} days before "
        "today's UTC date."
    )
    end: AwareInstant = Field(description="The range's end (exclusive; not in the future).")
    mode: Literal["add", "replace"] = Field(
        default="add",
        description="add: the events are counted on top of the stored ones. replace: the stored events of "
        "the range (these customers and meters) are voided at commit and the held events counted instead "
        "(on whole hours; a revert gives the voided events back).",
    )
    reason: AuditedReason = Field(description="Why the backfill is opened (audited).")
    ticket: TicketText | None = None


class BackfillAction(BaseModel):
    """``POST /admin/backfills/{id}/commit``, ``.../cancel`` and ``.../revert``: why (audited)."""

    model_config = ConfigDict(extra="forbid")

    reason: AuditedReason = Field(description="Why (audited).")
    ticket: TicketText | None = None


class BackfillEventStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int
    transaction_id: str | None
    status: Literal["held", "duplicate", "conflict", "rejected"] = Field(
        description="held: kept for the commit; duplicate: the backfill holds this event already; "
        "conflict: it holds another event under this transaction_id (the first one stands)."
    )
    error: EventError | None = None


class BackfillEventsResult(BaseModel):
    """What ``POST /admin/backfills/{id}/events`` answers: each event held or refused, in request order,
    and one count per status (each the number of events answered with it)."""

    model_config = ConfigDict(extra="forbid")

    backfill_id: str
    held: int = Field(description="Events newly held by this request.")
    duplicate: int = Field(description="Events the backfill held already (the same content).")
    conflict: int = Field(description="Events under a held transaction_id with other content (refused).")
    rejected: int = Field(
        description="Events refused by validation, the backfill's scope, or a transaction_id a stored "
        "event takes (voided, or other content in a replace)."
    )
    events: list[BackfillEventStatus]


class BackfillCorrection(BaseModel):
    """One invoice a commit corrected: the rerun's action and the amount it billed."""

    model_config = ConfigDict(extra="forbid")

    invoice_id: str
    action: Literal[
        "draft_recomputed", "adjustment_pending", "adjustment_applied", "correction_invoiced", "unchanged"
    ] = Field(
        description="What carried the commit's events there: a rerun's action, or adjustment_applied when "
        "the next window's look-back billed them first (correction_invoice_id is then that window's "
        "invoice)."
    )
    amount_minor: int = Field(
        description="The money the commit changed on this invoice, after its own discounts and before "
        "tax: a draft's change of subtotal, or the adjustment lines' amount."
    )
    tax_minor: int = Field(default=0, description="The change of exclusive tax.")
    total_minor: int = Field(default=0, description="amount_minor + tax_minor (before credits).")
    correction_invoice_id: str | None = Field(
        description="The correction invoice issued, if any (null when credit notes settled all of it: "
        "credit_note_ids); for adjustment_applied, the window invoice that billed the adjustment lines."
    )
    credit_note_ids: list[str] = Field(
        default_factory=list,
        description="The credit notes a negative correction after the end issued against the invoices "
        "carrying what it takes back (a revert settled by a credit note names it here), in the order "
        "issued; empty when none.",
    )


class BackfillUnbilled(BaseModel):
    """Counted backfill events no invoice bills, of one customer and reason."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str
    reason: Literal["no_subscription"] = Field(
        description="no_subscription: no subscription of the customer covers the events' time."
    )
    events: int
    first_timestamp: str
    last_timestamp: str


UNBILLED_COUNT = "Counted events no invoice will bill (at a time no subscription of the customer covers)."
CONFLICTING_COUNT = (
    "Held events not counted because their transaction id holds a stored event with other content, which "
    "stands (mode add counts on top of what is stored, as a live conflict; a replace supersedes it)."
)


class BackfillHeldId(BaseModel):
    """A held event, by its customer and transaction id."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str
    transaction_id: str


class BackfillCommitted(BaseModel):
    """What a commit did."""

    model_config = ConfigDict(extra="forbid")

    events_counted: int
    events_not_counted: int = Field(
        description="Held events whose transaction id was stored already with the same content (or, in an "
        "add backfill, with other content)."
    )
    events_replaced: int = Field(
        default=0, description="mode replace: the stored events of the range voided by the commit."
    )
    events_superseded: int = Field(
        default=0,
        description="mode replace: stored events under a held event's transaction id, with other content, "
        "voided by the commit (the held content counted as their corrected copy; in events_counted).",
    )
    events_conflicting: int = Field(default=0, description=CONFLICTING_COUNT + " Part of events_not_counted.")
    conflicting: list[BackfillHeldId] = Field(
        default_factory=list, description="The first 100 of events_conflicting."
    )
    events_unbilled: int = Field(default=0, description=UNBILLED_COUNT)
    unbilled: list[BackfillUnbilled] = Field(default_factory=list, description="events_unbilled in detail.")
    invoices: list[BackfillCorrection]


class BackfillRevertRequest(BaseModel):
    """Who asked for the revert, when and why (audited as ``backfill.revert``)."""

    model_config = ConfigDict(extra="forbid")

    reason: str
    ticket: str | None
    by: str
    at: str


class BackfillReverted(BaseModel):
    """What a revert did: the commit's counted events voided, the events a replace voided given back, and
    per invoice the rerun that took their amount back."""

    model_config = ConfigDict(extra="forbid")

    events_voided: int = Field(
        description="The events the commit counted (and operators' corrected copies of them) that this "
        "revert voided."
    )
    events_already_voided: int = Field(
        default=0,
        description="Events the commit counted that were void already (an operator's void or "
        "amend): left as they are, not in events_voided.",
    )
    events_restored: int = Field(
        default=0,
        description="mode replace: the events the commit voided (replaced or superseded), given back by the "
        "revert.",
    )
    invoices: list[BackfillCorrection]


class BackfillView(BaseModel):
    """A backfill: its scope, state and, once committed, what the commit did."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(examples=["bf_0123456789abcdef01234567"])
    object: Literal["backfill"]
    status: Literal["open", "committing", "committed", "reverting", "reverted", "cancelled"]
    customer_ids: list[str]
    meter_codes: list[str]
    start: str
    end: str
    mode: Literal["add", "replace"]
    reason: str
    ticket: str | None
    created_at: str
    events_held: int
    committed: BackfillCommitted | None = Field(
        default=None,
        description="Once committed: the events counted, and per invoice the rerun's action and amount.",
    )
    committed_at: str | None = None
    cancelled_at: str | None = None
    revert: BackfillRevertRequest | None = Field(
        default=None, description="Once a revert started: its reason, ticket, actor and time."
    )
    reverted: BackfillReverted | None = Field(
        default=None, description="Once reverted: the events voided and the invoices corrected."
    )
    reverted_at: str | None = None


class BackfillList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    object: Literal["list"]
    data: list[BackfillView]
    has_more: bool
    next_cursor: str | None


class BackfillInvoicePreview(BaseModel):
    """One invoice the backfill changes: what its window amounts to now and after the commit."""

    model_config = ConfigDict(extra="forbid")

    invoice_id: str
    number: str | None
    status: str
    customer_id: str
    subscription_id: str | None
    period_start: str
    period_end: str
    before_minor: int = Field(
        description="What the window is billed now (its lines and corrections), after its discounts and "
        "with its exclusive tax, before credits."
    )
    after_minor: int = Field(description="The same once the backfill is committed.")
    difference_minor: int = Field(description="after_minor - before_minor: the money that changes.")
    subtotal_before_minor: int = Field(description="before_minor without the exclusive tax.")
    subtotal_after_minor: int = Field(description="after_minor without the exclusive tax.")
    subtotal_difference_minor: int
    tax_difference_minor: int = Field(description="The change of exclusive tax.")
    applied_as: Literal["draft_recomputed", "adjustment_pending", "correction_invoiced"] = Field(
        description="How the commit applies the difference (docs/billing.md, 'Backfills')."
    )
    withheld: list[WithheldLine] = Field(
        default_factory=list,
        description="Differences against a line re-rated 0 as unbillable: not in difference_minor; "
        "the commit is refused (409 correction_unbillable) while there is one.",
    )


class WithheldLine(BaseModel):
    """A difference not applied: the line it would correct is re-rated 0 because it cannot be billed
    (docs/billing.md, "Corrections against an unbillable line")."""

    model_config = ConfigDict(extra="forbid")

    invoice_id: str
    number: str | None
    line_id: str
    unbillable: str | None = Field(description="Why the re-rated line is billed 0 (source.unbillable).")
    quantity: str = Field(description="The quantity difference the correction would have carried.")
    amount_minor: int = Field(description="The difference it would have applied (not applied).")


class BackfillOpenPeriod(BaseModel):
    """A current period (not invoiced yet) the backfill changes: the upcoming invoice's window to date."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str
    subscription_id: str | None
    period_start: str
    period_end: str
    before_minor: int = Field(description="The upcoming invoice's total_minor (after discounts, with tax).")
    after_minor: int
    difference_minor: int
    subtotal_before_minor: int
    subtotal_after_minor: int
    subtotal_difference_minor: int
    tax_difference_minor: int
    unbillable_lines: list[UnbillableLine] = Field(
        default_factory=list,
        description="Lines the events would bring to 0 because their usage cannot be billed: the commit is "
        "refused (409 correction_unbillable) while there is one.",
    )


class BackfillPreview(BaseModel):
    model_config = ConfigDict(extra="forbid")

    object: Literal["backfill_preview"]
    backfill_id: str
    events_held: int
    events_counted: int = Field(
        description="Held events the commit would count: not stored yet, or counted as the corrected copy "
        "of the stored event of their transaction id (voided, or superseded by a replace)."
    )
    events_conflicting: int = Field(default=0, description=CONFLICTING_COUNT)
    conflicting: list[BackfillHeldId] = Field(
        default_factory=list, description="The first 100 of events_conflicting."
    )
    events_replaced: int = Field(
        default=0, description="mode replace: the stored events of the range the commit would void."
    )
    events_superseded: int = Field(
        default=0,
        description="mode replace: stored events under a held event's transaction id, with other content, "
        "the commit would void (the held content counted instead; in events_counted).",
    )
    events_unbilled: int = Field(default=0, description=UNBILLED_COUNT)
    unbilled: list[BackfillUnbilled] = Field(default_factory=list, description="events_unbilled in detail.")
    invoices: list[BackfillInvoicePreview]
    open_periods: list[BackfillOpenPeriod] = Field(
        description="Current periods not invoiced yet: their invoice will count the events when billed."
    )
    difference_minor: int
