"""Operator requests of the ops API: running a consistency sweep."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from neruba.models.fields import AuditedReason, TicketText


class SweepRequest(BaseModel):
    """``POST /admin/sweeps``: which checks (default all) over which window (default the last two hours)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    checks: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, min_length=1, max_length=20
    )
    from_: AwareDatetime | None = Field(default=None, alias="from", description="Window start (inclusive).")
    to: AwareDatetime | None = Field(default=None, description="Window end (exclusive); default now.")


class RedriveRequest(BaseModel):
    """``POST /admin/dlqs/{name}/redrive``: why the messages go back to their queue (audited)."""

    model_config = ConfigDict(extra="forbid")

    reason: AuditedReason = Field(description="Why the queue is redriven (audited).")
    ticket: TicketText | None = Field(default=None, description="Support or incident ticket.")
