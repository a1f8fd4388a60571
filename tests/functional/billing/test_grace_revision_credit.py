"""Usage counted during a window's grace period is paid by the customer's credit as the window's own usage
is (docs/billing.md, "A draft revised during its grace period"): the revision that finalizes the draft
applies usable credit to what it adds, in its one transaction (the grants' conditional decrements, the
revision posting's credit entries), and gives back to the grants what they paid of usage it takes away.

Real pricing (1.00 per API call, daily windows), 19% exclusive tax, a promotional grant (``taxed_days``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day, schedule
from tests.functional.billing.taxed_days import day0_billed
from tests.functional.billing.test_correction_settlement import _agree
from tests.functional.billing.test_event_void_billing import _bill
from tests.functional.billing.test_grant_paid_corrections import _balance, _remaining_of, _usage
from tests.functional.billing.test_real_correction import api, explain

__all__ = ["api"]  # the fixture, used by name


def _day1_draft(real: World, monkeypatch: Any, grant: int, calls: int) -> str:
    """A grant of ``grant``, day 0 billed (4 calls, the grant paying what it can); day 1's window billed
    with ``calls`` calls: a draft in its grace period. Returns the grant's id."""
    _sub, grant_id = day0_billed(real, monkeypatch, grant)
    real.usage("acme", START + day(1, 2), calls)
    _bill(real, START + day(2, 1), monkeypatch)
    draft = _usage(real, 1)
    paid = min(max(grant - 400, 0), calls * 100)
    assert (draft["status"], draft["credits_applied_minor"]) == ("draft", paid)
    return str(grant_id)


@pytest.mark.parametrize(("grant", "paid"), [(1000, 300), (600, 200)], ids=["grant-covers", "grant-runs-out"])
def test_usage_counted_during_the_grace_period_is_paid_by_the_credit_left(
    real: World, api: Any, monkeypatch: Any, grant: int, paid: int
) -> None:
    # GIVEN day 1's draft billed 1 call, the grant paying it (the grant has 500 left, or 100)
    grant_id = _day1_draft(real, monkeypatch, grant, 1)

    # WHEN 2 more calls of day 1 are counted during the grace period and the draft is finalized
    real.usage("acme", START + day(1, 2), 3)
    schedule(real, START + day(2, 3))

    # THEN the revision applies the credit left to what it added: the grant pays all 300 (or the 200 it
    # had), the customer owes the tax and the rest in money
    second = _usage(real, 1)
    assert second["status"] == "finalized"
    assert (second["subtotal_minor"], second["tax_minor"]) == (300, 57)
    assert second["credits_applied_minor"] == paid
    assert second["total_minor"] == 300 + 57 - paid
    assert sum(int(a["amount_minor"]) for a in second["applications"]) == paid
    assert {a["grant_id"] for a in second["applications"]} == {grant_id}
    assert _remaining_of(grant_id) == grant - 400 - paid
    assert _balance("receivable") == 76 + second["total_minor"] + (0 if grant >= 400 else 400)
    _agree(real)
    # AND explain names the postings that book it: the invoice's, its revision's and that revision's credit
    shown = explain(api, second["id"])
    keys = [p["idempotency_key"] for p in shown["postings"]]
    ids = [f"invoice:{second['id']}", f"invoice:{second['id']}:rev1", f"invoice:{second['id']}:rev1:credit"]
    assert keys[:3] == ids
    (line,) = shown["lines"]
    assert line["postings"] == [p["posting_id"] for p in shown["postings"][:3]]


def test_usage_taken_away_during_the_grace_period_gives_the_grant_back_what_it_paid(
    real: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN day 1's draft billed 3 calls, the grant paying them (it has 300 left after: 1000 - 400 - 300)
    grant_id = _day1_draft(real, monkeypatch, 1000, 3)
    assert _remaining_of(grant_id) == 300

    # WHEN 2 of them are taken away during the grace period (voided) and the draft is finalized
    real.usage("acme", START + day(1, 2), 1)
    schedule(real, START + day(2, 3))

    # THEN the grant pays only the call left, and has the 200 back
    second = _usage(real, 1)
    assert (second["status"], second["subtotal_minor"]) == ("finalized", 100)
    assert second["credits_applied_minor"] == 100
    assert second["total_minor"] == 19
    assert sum(int(a["amount_minor"]) for a in second["applications"]) == 100
    assert _remaining_of(grant_id) == 500
    _agree(real)
    # AND explain shows which grant got what back: the revision's credit posting names it
    shown = explain(api, second["id"])["postings"]
    (credit,) = [p for p in shown if p["idempotency_key"].endswith(":credit")]
    back = [e for e in credit["entries"] if e["account"] == "prepaid_credit"]
    assert back == [
        {"account": "prepaid_credit", "debit_minor": 0, "credit_minor": 200, "grant_id": grant_id}
    ]


def test_credit_given_back_to_a_grant_voided_since_is_closed_at_once(real: World, monkeypatch: Any) -> None:
    from neruba.logic.ledger.admin import Operator, void_grant
    from neruba.models.ledger import GrantVoid
    from tests.functional.billing.test_correction_disputed import _stores
    from tests.functional.billing.test_grant_paid_corrections import _grant

    # GIVEN a grant of 400 paying day 0, and a second one of 500 paying day 1's 3 calls (200 left), voided
    # during day 1's grace period
    _sub, first = day0_billed(real, monkeypatch, 400)
    late = _grant("g2", "promotional", 500)
    real.usage("acme", START + day(1, 2), 3)
    _bill(real, START + day(2, 1), monkeypatch)
    assert (_remaining_of(str(first)), _remaining_of(late)) == (0, 200)
    void_grant(_stores(), Operator("key:t", None, "void-g2"), late, GrantVoid(reason="issued by mistake"))
    allowance = _balance("promotional_allowance")

    # WHEN 2 of the calls are taken away during the grace period and the draft is finalized
    real.usage("acme", START + day(1, 2), 1)
    schedule(real, START + day(2, 3))

    # THEN the grant pays the call left; what it paid of the others is closed at once (it cannot be used
    # again), never the customer's money: the invoice owes the tax only
    second = _usage(real, 1)
    assert (second["credits_applied_minor"], second["total_minor"]) == (100, 19)
    assert _remaining_of(late) == 0
    assert _balance("promotional_allowance") == allowance  # given back, then closed: no allowance left
    assert _balance("receivable") == 76 + 19  # the two days' tax
    _agree(real)


def test_a_revision_racing_another_use_of_the_grant_is_decided_again_never_applied_twice(
    real: World, monkeypatch: Any
) -> None:
    import boto3

    from neruba.logic.billing.context import Billing
    from neruba.settings import get_settings

    # GIVEN day 1's draft billed 1 call (the grant has 500 left), 2 more calls counted during the grace
    grant_id = _day1_draft(real, monkeypatch, 1000, 1)
    real.usage("acme", START + day(1, 2), 3)
    table = get_settings().ledger_table
    real_apply = Billing.apply_credits

    def raced(self: Billing, *args: Any, **kwargs: Any) -> Any:
        found = real_apply(self, *args, **kwargs)  # read: 500 left; then another window takes 450 of it
        boto3.client("dynamodb").update_item(
            TableName=table, Key={"pk": {"S": f"GRANT#{grant_id}"}, "sk": {"S": "#"}},
            UpdateExpression="SET remaining_minor = remaining_minor - :a",
            ExpressionAttributeValues={":a": {"N": "450"}},
        )  # fmt: skip
        return found

    # WHEN the draft's revision races it
    monkeypatch.setattr(Billing, "apply_credits", raced)
    schedule(real, START + day(2, 3))
    monkeypatch.setattr(Billing, "apply_credits", real_apply)

    # THEN nothing of the revision is written (the draft waits), and the next run decides with what is
    # left: the grant pays 50 more, the rest is owed in money
    assert _usage(real, 1)["status"] == "draft"
    assert _remaining_of(grant_id) == 50
    schedule(real, START + day(2, 4))
    second = _usage(real, 1)
    assert (second["status"], second["credits_applied_minor"]) == ("finalized", 150)
    assert second["total_minor"] == 300 + 57 - 150
    assert _remaining_of(grant_id) == 0
    # (the other use was written around the ledger here: only the receivable is compared)
    assert _balance("receivable") == 76 + second["total_minor"]
