"""What a rerun and the corrections sweep read does not grow with what lies outside the invoice corrected
(docs/billing.md, "What a rerun reads"): the deployment's other backfills, the customer's backfills of
other periods. Requests and items read are counted on the shared DynamoDB client
(``benchmarks.billing_run.Meter``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from neruba.timefmt import ts
from tests.functional.billing.backfill_support import handler, live_events
from tests.functional.billing.conftest import START, World
from tests.functional.billing.helpers import day, schedule, work
from tests.functional.billing.test_backfill_same_ids import stored

__all__ = ["stored"]  # the fixture, used by name

OTHERS = 12  # backfills of other customers, and of the same customer's older days


def _billed(world: World, monkeypatch: Any) -> dict[str, str]:
    """acme and globex, one call each on day 0, day 0 billed and finalized: day 0's invoice of each."""
    for customer in ("acme", "globex"):
        world.subscribe(customer)
        live_events(world, [f"{customer}-0"], START + day(0, 2), f"live-{customer}", customer=customer)
    schedule(world, START + day(1, 3))
    work(world, START + day(1, 3), monkeypatch)
    schedule(world, START + day(1, 5))
    found = {}
    for customer in ("acme", "globex"):
        day0 = [i for i in world.invoices(customer) if i["period_start"] == ts(START)]
        [invoice] = [i for i in day0 if i["kind"] == "usage" and i["status"] == "finalized"]
        found[customer] = str(invoice["id"])
    return found


def _committed_backfill(world: World, n: int, customer: str, start: datetime, end: datetime) -> None:
    """A committed backfill as its commit leaves it (its reach recorded), written directly."""
    from neruba.dal.transaction import Transaction

    repo = world.ctx.billing.backfills
    doc = {
        "id": f"bf_other_{n:03d}", "object": "backfill", "customer_ids": [customer],
        "meter_codes": ["api_calls"], "start": ts(start), "end": ts(end), "mode": "add",
        "reason": "elsewhere", "ticket": None, "created_at": ts(START + day(2, 6)),
    }  # fmt: skip
    put = repo.put_item(doc)
    put["Put"]["Item"].update(status={"S": "committed"}, committing_at={"S": ts(START + day(2, 7))})
    Transaction([put, *repo.reach_items(doc["id"], [customer], doc["start"], doc["end"])]).commit()


def _reads_of_rerun(invoice_id: str, key: str) -> dict[str, Any]:
    from benchmarks.billing_run import Meter
    from neruba.dal.clients import client
    from tests.support.api import api_event, call

    event = api_event(
        "POST",
        f"/admin/invoices/{invoice_id}/rerun",
        body={"reason": "late call"},
        path_parameters={"invoice_id": invoice_id},
        headers={"Idempotency-Key": key},
    )
    meter = Meter(main=True)
    meter.attach(client("dynamodb"))
    try:
        status, answer, _ = call(handler(), event)
    finally:
        meter.detach(client("dynamodb"))
    assert status == 200, answer
    assert answer["action"] == "adjustment_pending", answer
    return meter.snapshot()


def test_a_reruns_reads_do_not_grow_with_other_customers_backfills_nor_older_ones(
    world: World, monkeypatch: Any
) -> None:
    day0 = _billed(world, monkeypatch)
    # GIVEN a late call on acme's day 0, rerun with no backfill stored anywhere
    live_events(world, ["acme-late"], START + day(0, 5), "late-acme")
    few = _reads_of_rerun(day0["acme"], "rr-acme")
    # WHEN 12 committed backfills are stored: 8 of other customers over day 0, 4 of globex's days
    # before day 0 (the last one ending where day 0 starts); globex's day 0 gets the same late call, rerun
    for n in range(OTHERS):
        older = n >= 8
        customer = "globex" if older else f"other-{n}"
        start = START - day(OTHERS - n) if older else START
        _committed_backfill(world, n, customer, start, start + day(1))
    live_events(world, ["globex-late"], START + day(0, 5), "late-globex", customer="globex")
    many = _reads_of_rerun(day0["globex"], "rr-globex")
    # THEN globex's rerun sends the same requests and reads the same items as acme's: none of them
    assert many["requests"] == few["requests"]
    assert many["items_read"] == few["items_read"], (many["items_read"], few["items_read"])


def test_a_replace_is_found_where_it_superseded_an_event_outside_its_range_and_the_migration_records_it(
    world: World, stored: None
) -> None:
    import boto3

    from neruba.logic.billing import backfill_reach
    from neruba.migrations import MigrationContext
    from neruba.migrations.m0007_backfill_reach import apply
    from neruba.settings import get_settings
    from tests.functional.billing.backfill_support import act
    from tests.functional.billing.test_backfill_same_ids import _reexport

    repo = world.ctx.billing.backfills

    def found(d: int) -> set[str]:
        return backfill_reach.reaching(repo, "acme", ts(START + day(d)), ts(START + day(d + 1)))

    # GIVEN a re-export of day 0 that supersedes s1-0, stored on day 1, committed
    backfill = _reexport()
    assert act(backfill, "commit")[1]["status"] == "committed"
    # THEN a rerun of day 0 or day 1 finds it among acme's backfills; of day 2, not
    assert (found(0), found(1), found(2)) == ({backfill}, {backfill}, set())
    # WHEN its index items are lost (a backfill committed before them) and the migration runs, twice
    table = get_settings().billing_table
    dynamodb = boto3.client("dynamodb")
    for item in dynamodb.scan(TableName=table)["Items"]:
        if item["pk"]["S"].startswith("BFCUST#"):
            dynamodb.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
    assert (found(0), found(1)) == (set(), set())
    ctx = MigrationContext(settings=get_settings(), now=START + day(3))
    assert apply(ctx) == {"backfills": 1, "events_outside_range": 1}
    assert apply(ctx) == {"backfills": 1, "events_outside_range": 1}
    # THEN it is found again where it was
    assert (found(0), found(1), found(2)) == ({backfill}, {backfill}, set())


HISTORY = 20  # old invoices of acme's subscription, each with an applied adjustment


def _history(real: World, invoice: dict[str, Any]) -> None:
    """20 finalized usage invoices of the subscription of ``invoice``, 140 to 160 days before it, each
    corrected once (an applied adjustment in the subscription's ``ADJ#`` partition), written directly."""
    from neruba.dal.billing import Adjustment
    from neruba.dal.transaction import Transaction

    ctx, sub_id = real.ctx, str(invoice["subscription_id"])
    for n in range(HISTORY):
        start = START - day(160 - n)
        doc = {
            "id": f"in_old_{n:03d}", "customer_id": invoice["customer_id"], "subscription_id": sub_id,
            "kind": "usage", "status": "finalized", "currency": invoice["currency"], "lines": [],
            "period_start": ts(start), "period_end": ts(start + day(1)),
        }  # fmt: skip
        line = {"line_id": f"adjustment:{doc['id']}:usage:1", "amount_minor": 0, "quantity": 0}
        adjustment = Adjustment(f"{doc['id']}#usage#001", doc["id"], "usage", "applied", line, "in_later")
        puts = [ctx.invoices.put_item(doc, START), ctx.billing.adjustment_put_item(sub_id, adjustment)]
        Transaction(puts).commit()


def _credit_notes_numbered_from(n: int) -> None:
    import boto3

    from neruba.settings import get_settings

    item = {"pk": {"S": "SEQ#CN"}, "sk": {"S": "#"}, "n": {"N": str(n)}}
    boto3.client("dynamodb").put_item(TableName=get_settings().billing_table, Item=item)


def _metered(call: Any) -> tuple[dict[str, Any], Any]:
    from benchmarks.billing_run import Meter
    from neruba.dal.clients import client

    meter = Meter(main=True)
    meter.attach(client("dynamodb"))

    try:
        answer = call()
    finally:
        meter.detach(client("dynamodb"))
    return meter.snapshot(), answer


def test_the_corrections_sweep_and_a_rerun_read_nothing_of_the_customers_older_history(
    real: World, monkeypatch: Any
) -> None:
    from neruba.logic.billing.corrections import late_corrections
    from tests.functional.billing.test_correction_settlement_reads import _ended_after
    from tests.functional.billing.test_real_correction import BILLED_CALLS, PRICE, rerun

    # GIVEN globex and acme, each with a subscription ended on day 0 (12 calls billed); acme's with 20
    # older corrected invoices
    final = {c: _ended_after(real, c, 0, monkeypatch) for c in ("globex", "acme")}
    _history(real, final["acme"])
    # WHEN a late call of day 0 of each is billed by the corrections sweep
    now = START + day(1, 2)
    sweeps = {}
    for customer in ("globex", "acme"):
        real.usage(customer, START + day(0, 5), BILLED_CALLS + 1)
        sweeps[customer] = _metered(lambda c=customer: late_corrections(real.ctx, c, now))
    # THEN each issues its correction, and acme's sweep sends the same requests and reads the same items
    for customer, (_, issued) in sweeps.items():
        assert [i["corrects"] for i in issued] == [final[customer]["id"]], issued
    assert sweeps["acme"][0]["requests"] == sweeps["globex"][0]["requests"]
    assert sweeps["acme"][0]["items_read"] == sweeps["globex"][0]["items_read"]

    # WHEN each final invoice is recounted one call lower and rerun
    from functions.billing_api.app import lambda_handler
    from neruba import bootstrap

    bootstrap.install(billing=real.ctx)
    _credit_notes_numbered_from(5)  # the first note of the deployment would read no counter
    reruns = {}
    for customer in ("globex", "acme"):
        real.usage(customer, START + day(0, 5), BILLED_CALLS)
        reruns[customer] = _metered(lambda c=customer: rerun(lambda_handler, final[c]["id"], f"rr-{c}"))
    # THEN each credits the call back, reading the same items: none of acme's older invoices or adjustments
    for _, (status, answer) in reruns.values():
        assert status == 200 and answer["correction"]["amount_minor"] == -PRICE, answer
    assert reruns["acme"][0]["requests"] == reruns["globex"][0]["requests"]
    assert reruns["acme"][0]["items_read"] == reruns["globex"][0]["items_read"]


def test_pending_adjustments_are_listed_until_applied_and_the_migration_lists_older_ones(
    world: World,
) -> None:
    import boto3

    from neruba.dal.billing import Adjustment
    from neruba.dal.transaction import Transaction
    from neruba.migrations import MigrationContext
    from neruba.migrations.m0008_unapplied_adjustments_listed import apply
    from neruba.settings import get_settings

    billing, table = world.ctx.billing, get_settings().billing_table

    def adjustment(n: int, status: Any) -> Adjustment:
        line = {"line_id": f"adjustment:in_a:usage:{n}", "amount_minor": 10, "quantity": 1}
        return Adjustment(f"in_a#usage#{n:03d}", "in_a", "usage", status, line, None)

    # GIVEN sub_1 with two pending adjustments and an applied one, and sub_2 with a pending one
    puts = [billing.adjustment_put_item("sub_1", adjustment(n, "pending")) for n in (1, 2)]
    puts += [billing.adjustment_put_item("sub_1", adjustment(3, "applied"))]
    puts += [billing.adjustment_put_item("sub_2", adjustment(1, "pending"))]
    Transaction(puts).commit()
    # THEN the pending ones of each subscription are listed, not the applied one
    assert [a.key for a in billing.pending_adjustments("sub_1")] == ["in_a#usage#001", "in_a#usage#002"]
    # WHEN one is applied: it leaves the list
    Transaction([billing.adjustment_apply_item("sub_1", "in_a#usage#001", "in_b")]).commit()
    assert [a.key for a in billing.pending_adjustments("sub_1")] == ["in_a#usage#002"]
    # WHEN a pending one was written before the list (no list keys) and the migration runs, twice
    dynamodb = boto3.client("dynamodb")
    key = {"pk": {"S": "ADJ#sub_2"}, "sk": {"S": "in_a#usage#001"}}
    dynamodb.update_item(TableName=table, Key=key, UpdateExpression="REMOVE list_pk, list_sk")
    assert billing.pending_adjustments("sub_2") == []
    ctx = MigrationContext(settings=get_settings(), now=START)
    assert apply(ctx) == {"pending_adjustments": 1}
    assert apply(ctx) == {"pending_adjustments": 0}
    # THEN it is listed again; the applied ones are not
    assert [a.key for a in billing.pending_adjustments("sub_2")] == ["in_a#usage#001"]
    assert [a.key for a in billing.pending_adjustments("sub_1")] == ["in_a#usage#002"]
