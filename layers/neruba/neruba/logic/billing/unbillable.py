"""The one rule for differences against an unbillable re-rating: they are never applied.

A usage line rated 0 because it cannot be billed (``source.unbillable``: ``amount_too_large``, a quantity
whose amount is over the line limit; ``per_event_rule_incomplete``, events the per-event rule has not
priced yet; docs/pricing.md) does not say the usage is worth 0. A difference computed against it would
take back what the invoice billed for the legitimate usage of the window: adding usage would give a
credit. So every path comparing a re-rated window with what was billed (``logic.billing.worker.
line_deltas``) splits its differences here (:func:`split`):

* the differences whose re-rated line is flagged are **withheld**: not recorded, not billed, the invoice
  left as billed;
* a request that would apply them (an invoice rerun, a backfill commit, a void that recomputes) is
  refused with 409 ``correction_unbillable`` naming the invoices and lines (:func:`refuse`), nothing
  written;
* a path no one asked for (the late-event look-back of the next window, the ``corrections`` sweep after
  the end, a draft re-rated at finalization) applies the rest, logs the withheld ones and counts them in
  the ``CorrectionsWithheldUnbillable`` metric (:func:`report`).

The operator corrects the usage (voids or amends the event) and the next re-rating bills the window again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from neruba.errors import ConflictError

CODE = "correction_unbillable"
METRIC = "CorrectionsWithheldUnbillable"
INVOICED_METRIC = "UnbillableLinesInvoiced"


def flag(line: Mapping[str, Any] | None) -> str | None:
    """Why a rated line was billed 0 as unbillable (``source.unbillable``), or None."""
    if not line:
        return None
    reason = (line.get("source") or {}).get("unbillable")
    return str(reason) if reason else None


def withheld_line(delta: Mapping[str, Any]) -> dict[str, Any]:
    """What a withheld difference is reported as: the invoice and line it would correct, why, and the
    difference it would have been."""
    ref = delta["references"]
    return {
        "invoice_id": ref["invoice_id"],
        "number": ref.get("number"),
        "line_id": ref["line_id"],
        "unbillable": ((delta.get("source") or {}).get("rerated") or {}).get("unbillable"),
        "quantity": str(delta["quantity"]),
        "amount_minor": int(delta["amount_minor"]),
    }


def split(deltas: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the differences that may be applied, the withheld ones as :func:`withheld_line`): a difference is
    withheld when the line it brings the invoice to is flagged unbillable."""
    applied: list[dict[str, Any]] = []
    withheld: list[dict[str, Any]] = []
    for delta in deltas:
        if ((delta.get("source") or {}).get("rerated") or {}).get("unbillable"):
            withheld.append(withheld_line(delta))
        else:
            applied.append(delta)
    return applied, withheld


class WithheldError(ConflictError):
    """409 ``correction_unbillable``: the change asked for would apply withheld differences."""

    default_code = CODE

    def __init__(self, withheld: list[dict[str, Any]]) -> None:
        names = ", ".join(f"{_where(w)} line {w['line_id']} ({w['unbillable']})" for w in withheld)
        super().__init__(
            f"The correction would bring {len(withheld)} line(s) to an amount rated 0 as unbillable: "
            f"{names}. Correct the usage (void or amend the events) before correcting the invoice.",
            details=withheld,
        )
        self.withheld = withheld


def _where(withheld: Mapping[str, Any]) -> str:
    if withheld.get("invoice_id"):
        return f"invoice {withheld['invoice_id']}"
    return f"the open period of {withheld.get('subscription_id')} from {withheld.get('period_start')}"


def refuse(withheld: list[dict[str, Any]]) -> None:
    """Raise :class:`WithheldError` naming every withheld line (``details``); nothing when none."""
    if withheld:
        raise WithheldError(withheld)


def flagged_lines(lines: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The lines of an invoice billed 0 as unbillable: ``{line_id, unbillable}`` each."""
    return [{"line_id": str(line["line_id"]), "unbillable": str(flag(line))} for line in lines if flag(line)]


def report_invoiced(doc: Mapping[str, Any]) -> None:
    """An invoice was issued with lines billed 0 as unbillable (their usage is not billed until an operator
    corrects it and the next re-rating bills it): an error log and the ``UnbillableLinesInvoiced`` metric."""
    found = flagged_lines(doc.get("lines") or [])
    if not found:
        return
    from neruba.observability import logger, metrics

    metrics.add_metric(name=INVOICED_METRIC, unit="Count", value=len(found))
    logger.error(
        "invoice issued with a line billed 0 as unbillable: correct the usage",
        extra={"invoice_id": doc.get("id"), "customer_id": doc.get("customer_id"), "lines": found},
    )


def report(withheld: list[dict[str, Any]], where: str, **ids: Any) -> None:
    """Log the withheld differences of an unattended path and count them (``METRIC``)."""
    if not withheld:
        return
    from neruba.observability import logger, metrics

    metrics.add_metric(name=METRIC, unit="Count", value=len(withheld))
    logger.warning(
        "correction withheld: the re-rated line is unbillable",
        extra={"where": where, "withheld": withheld, **ids},
    )
