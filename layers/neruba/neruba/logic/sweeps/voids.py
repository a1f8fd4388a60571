"""The ``voids`` sweep check: finish every void or amend its request did not (``logic/ingest/voids.py``).

An open void is left by a request killed after its transaction, or by a cell that had pending usage not
folded yet or kept changing; finishing recomputes the voided event's cell, counts the corrected copy and
deletes the open void, each step safe to repeat. Runs after ``usage`` (which folds pending usage) and
before ``corrections`` (which bills what changed after a subscription's end).
"""

from __future__ import annotations

from neruba.logic.sweeps.runner import CheckResult, SweepContext


def voids_check(ctx: SweepContext) -> CheckResult:
    """Finish the open voids (see the module docstring)."""
    from neruba.logic.ingest.voids import finish_open

    done = finish_open(ctx.now)
    result = CheckResult("voids", checked={"open_voids": sum(len(v) for v in done.values())})
    for ids in done["finished"]:
        result.found += 1
        result.repaired += 1
        result.repairs.append({"kind": "void_finished", **ids})
    for failure in done["failed"]:
        result.found += 1
        error = failure.pop("error")
        result.fail("void", error, **failure)
    result.details = {"waiting": done["waiting"]}
    return result
