"""The consistency sweep as a list of named checks, each one function, run on a schedule or on demand.

A check takes a :class:`SweepContext` (the window and the settings) and returns a :class:`CheckResult`
(what it checked, found and repaired, with the ids of every repair). ``CHECKS`` names each check by the
dotted path of its function, imported only when the check runs, so adding one is one function plus one
line here (or ``register_check`` at run time)::

    CHECKS = {
        "usage": "neruba.logic.sweeps.usage:usage_check",
        "ledger": "neruba.logic.sweeps.ledger:ledger_check",   # def ledger_check(ctx) -> CheckResult
    }

Example:
    >>> sorted(CHECKS)
    ['billing', 'corrections', 'ledger', 'notices', 'receivable', 'stripe', 'thresholds', 'usage']
    >>> report = run_sweep(ops, ["usage"], start, end, trigger="cli", actor="me",
    ...                    billing=bootstrap.billing)  # doctest: +SKIP
    >>> report["repaired"]  # doctest: +SKIP
    0
"""

from __future__ import annotations

import importlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from neruba.timefmt import iso

if TYPE_CHECKING:
    from neruba.dal.ops import OpsRepository
    from neruba.logic.billing.context import Billing
    from neruba.settings import Settings


class UnknownCheckError(KeyError):
    """A sweep check name that is not registered."""


@dataclass(frozen=True, slots=True)
class SweepContext:
    """What every check gets: the window [start, end), the time the sweep runs at, the settings, and the
    billing context (``neruba.bootstrap.billing``; called only by the checks that bill)."""

    start: datetime
    end: datetime
    now: datetime
    settings: Settings
    billing: Callable[[], Billing]


@dataclass(slots=True)
class CheckResult:
    """What one check checked (counts by kind), found and repaired; ``repairs`` carry ids.

    ``failures`` lists what the check could not check or repair (one entry per cell, customer or item,
    with its ids and the error); the check goes on with the rest, and any failure makes the sweep's
    status ``failed`` and counts in the ``SweepFailures`` metric (``SweepFailuresAlarm``). ``error`` is
    set when the check itself raised.
    """

    name: str
    checked: dict[str, int] = field(default_factory=dict)
    found: int = 0
    repaired: int = 0
    repairs: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)

    def fail(self, kind: str, exc: BaseException | str, **ids: Any) -> None:
        """Record one failure (``kind``, the ids it concerns, the error) and log it at ERROR."""
        from neruba.observability import logger

        error = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"[:500]
        entry = {"kind": kind, **ids, "error": error}
        self.failures.append(entry)
        logger.error("sweep check failure", extra={"check": self.name, **entry})

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "checked": dict(self.checked),
            "found": self.found,
            "repaired": self.repaired,
            "repairs": list(self.repairs),
            "details": dict(self.details),
            "error": self.error,
            "failures": list(self.failures),
        }


SweepCheck = Callable[[SweepContext], CheckResult]

CHECKS: dict[str, str] = {
    "usage": "neruba.logic.sweeps.usage:usage_check",
    "voids": "neruba.logic.sweeps.voids:voids_check",  # after usage folds, before billing corrections
    "ledger": "neruba.logic.sweeps.ledger:ledger_check",
    "billing": "neruba.logic.sweeps.billing:billing_check",
    "stripe": "neruba.logic.sweeps.stripe:stripe_check",
    "corrections": "neruba.logic.sweeps.corrections:corrections_check",  # before receivable: bills first
    "receivable": "neruba.logic.sweeps.receivable:receivable_check",
    "notices": "neruba.logic.sweeps.notices:notices_check",  # webhook events of time passing
    "thresholds": "neruba.logic.sweeps.thresholds:thresholds_check",  # threshold invoices: the backstop
}
_registered: dict[str, SweepCheck] = {}


def register_check(name: str, check: SweepCheck) -> None:
    """Add (or replace) a check at run time; ``CHECKS`` is the place for checks that ship."""
    _registered[name] = check


def check_names() -> list[str]:
    """Every registered check, sorted."""
    return sorted({*CHECKS, *_registered})


def run_order() -> list[str]:
    """The order a full sweep runs in: the shipped checks as listed in ``CHECKS`` (usage first, so the
    later checks see repaired usage), then checks registered at run time, sorted."""
    return [*CHECKS, *sorted(n for n in _registered if n not in CHECKS)]


def resolve_check(name: str) -> SweepCheck:
    """The function of check ``name`` (imported now)."""
    if name in _registered:
        return _registered[name]
    if name not in CHECKS:
        raise UnknownCheckError(name)
    module_name, _, attribute = CHECKS[name].partition(":")
    check: SweepCheck = getattr(importlib.import_module(module_name), attribute)
    return check


def new_sweep_id() -> str:
    """A sweep id: ``swp_`` and 20 hex digits."""
    return "swp_" + secrets.token_hex(10)


def run_checks(names: Sequence[str], ctx: SweepContext) -> list[CheckResult]:
    """Run each named check; a check that raises is reported with its error, the others still run."""
    from neruba.observability import logger

    results = []
    for name in names:
        check = resolve_check(name)
        try:
            results.append(check(ctx))
        except Exception as exc:
            logger.exception("sweep check failed", extra={"check": name})
            results.append(CheckResult(name=name, error=f"{type(exc).__name__}: {exc}"))
    return results


def run_sweep(
    ops: OpsRepository,
    names: Sequence[str] | None,
    start: datetime,
    end: datetime,
    *,
    trigger: str,
    actor: str,
    billing: Callable[[], Billing],
    now: datetime | None = None,
) -> dict[str, Any]:
    """Run the checks (all when ``names`` is None) over [start, end), store the report and return it.

    ``billing`` gives the billing context to the checks that need it (``neruba.bootstrap.billing``).

    Each repair is logged with its ids and counted in the ``SweepRepairs`` metric.
    """
    from neruba.settings import get_settings

    chosen = list(names) if names else run_order()
    unknown = [n for n in chosen if n not in check_names()]
    if unknown:
        raise UnknownCheckError(", ".join(unknown))
    from neruba.observability import logger

    sweep_id = new_sweep_id()
    logger.append_keys(sweep_id=sweep_id)  # every log line of the sweep carries its id
    started = datetime.now(UTC)
    ctx = SweepContext(start=start, end=end, now=now or started, settings=get_settings(), billing=billing)
    results = run_checks(chosen, ctx)
    report = {
        "id": sweep_id,
        "object": "sweep",
        "trigger": trigger,
        "actor": actor,
        "started_at": iso(started),
        "finished_at": iso(datetime.now(UTC)),
        "window": {"from": start.isoformat(), "to": end.isoformat()},  # as the caller gave it
        "checks": [r.as_dict() for r in results],
        "found": sum(r.found for r in results),
        "repaired": sum(r.repaired for r in results),
        "failed": sum(failure_count(r) for r in results),
        "status": "failed" if any(failure_count(r) for r in results) else "ok",
    }
    ops.put_sweep_report(report)
    publish(report)
    return report


def failure_count(result: CheckResult) -> int:
    """A check's failures; a check that raised counts as one."""
    return len(result.failures) + (1 if result.error else 0)


def publish(report: dict[str, Any]) -> None:
    """The ``SweepRepairs`` and ``SweepFailures`` metrics and one log line per repair (with the ids it
    concerns); each failure was logged at ERROR when the check recorded it."""
    from neruba.observability import logger, metrics

    metrics.add_metric(name="SweepRepairs", unit="Count", value=report["repaired"])
    metrics.add_metric(name="SweepFailures", unit="Count", value=report["failed"])
    for check in report["checks"]:
        for repair in check["repairs"]:
            logger.warning(
                "sweep repaired drift", extra={"sweep_id": report["id"], "check": check["name"], **repair}
            )
    logger.info(
        "sweep finished",
        extra={
            "sweep_id": report["id"],
            "found": report["found"],
            "repaired": report["repaired"],
            "failed": report["failed"],
            "status": report["status"],
        },
    )
