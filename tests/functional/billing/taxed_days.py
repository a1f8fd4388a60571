"""The setup the correction tests share (real pricing: 1.00 per API call, daily windows): 19% exclusive
tax on the plan, an optional promotional grant, day 0 billed 4 calls and finalized (400 + 76), then day 1
with calls of its own and late calls of day 0 billed, and the subscription ended."""

from __future__ import annotations

from typing import Any

from tests.functional.billing.conftest import START, World, subscribe_real
from tests.functional.billing.helpers import day, schedule
from tests.functional.billing.test_event_void_billing import _bill
from tests.functional.billing.test_grant_paid_corrections import _grant, _taxed


def day0_billed(real: World, monkeypatch: Any, grant: int = 0) -> tuple[str, str | None]:
    """19% exclusive tax, a promotional grant of ``grant`` (none when 0), acme subscribed, day 0 billed 4
    calls and finalized. Returns the subscription's id and the grant's."""
    _taxed(real, False)
    grant_id = _grant("g1", "promotional", grant) if grant else None
    sub = subscribe_real(real, "acme")
    real.usage("acme", START + day(0, 4), 4)
    _bill(real, START + day(1, 1), monkeypatch)
    schedule(real, START + day(1, 3))
    return str(sub["id"]), grant_id


def day1_billed(real: World, monkeypatch: Any, day0: int = 4, *, end: bool, finalize: bool = True) -> None:
    """Day 0 counted ``day0`` calls now (late calls when more than 4), day 1 one call of its own, the
    subscription cancelled at day 1 + 5h when ``end``; day 1 billed (its final window when ``end``), then
    finalized when ``finalize``."""
    from neruba.logic.catalog.subscriptions import cancel
    from neruba.models.catalog import Cancellation

    real.usage("acme", START + day(0, 4), day0)
    real.usage("acme", START + day(1, 2), 1)
    if end:
        sub_id = str(real.subscriptions[0]["id"])
        cancel(real.plans, sub_id, Cancellation(at_period_end=False), now=START + day(1, 5))
        _bill(real, START + day(1, 6), monkeypatch)
        if finalize:
            schedule(real, START + day(1, 8))
        return
    _bill(real, START + day(2, 1), monkeypatch)
    if finalize:
        schedule(real, START + day(2, 3))
