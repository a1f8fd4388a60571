"""Stripe-related API and queue models: operator replay requests, queue messages.

Example:
    >>> ReplayRequest(reason="ledger fixed, re-run").ticket is None
    True
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from neruba.models.fields import AuditedReason, TicketText

EVENT_ID_PATTERN = r"^evt_[A-Za-z0-9_]{1,250}$"
EventStatus = Literal["received", "processed", "ignored", "failed", "deferred", "parked"]


class ReplayRequest(BaseModel):
    """``POST /admin/stripe-events/{id}/replay``: why the operator re-runs the event (audited)."""

    model_config = ConfigDict(extra="forbid")

    reason: AuditedReason = Field(description="Why the event is replayed (audited).")
    ticket: TicketText | None = Field(default=None, description="Support or incident ticket.")


class SyncMessage(BaseModel):
    """A StripeSyncQueue message: the id of a finalized invoice to push to Stripe."""

    model_config = ConfigDict(extra="ignore")

    invoice_id: str = Field(min_length=1, max_length=128)
