"""Coupons, discounts and taxes through the billing API and the real worker: discount lines before
credits, each billing period counted once (also under reruns and a killed worker), tax per line after
discounts posted to tax_payable, explained, and refused with a code when a rule is broken."""

from __future__ import annotations

from typing import Any

import pytest

from neruba.settings import get_settings
from tests.functional.billing.conftest import START, World, assert_books_agree, ledger
from tests.functional.billing.helpers import Killed, day, schedule, work, worker
from tests.support.api import api_event, call
from tests.support.queues import receive_batch, run_batch

PERCENT = {"name": "Launch", "percent_off": "12.5", "duration": "repeating", "duration_periods": 2,
           "reason": "launch offer"}  # fmt: skip
VAT = {"display_name": "VAT", "percentage": "20", "inclusive": False, "country": "DE", "reason": "DE VAT"}


@pytest.fixture
def api(world: World) -> Any:
    from functions.billing_api.app import lambda_handler
    from neruba import bootstrap

    bootstrap.install(billing=world.ctx)
    return lambda_handler


def _post(api: Any, path: str, body: dict[str, Any], key: str | None = "k-1", method: str = "POST") -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    parts = path.strip("/").split("/")
    names = {"coupons": "coupon_id", "discounts": "discount_id", "tax-rates": "tax_rate_id",
             "customers": "customer_id", "invoices": "invoice_id"}  # fmt: skip
    params = {names[parts[1]]: parts[2]} if len(parts) > 2 else {}
    return call(api, api_event(method, path, body=body, path_parameters=params, headers=headers))[:2]


def _get(
    api: Any, path: str, params: dict[str, str] | None = None, query: dict[str, str] | None = None
) -> Any:
    return call(api, api_event("GET", path, path_parameters=params or {}, query=query))[:2]


def _coupon(api: Any, body: dict[str, Any] = PERCENT, key: str = "c-1") -> dict[str, Any]:
    status, coupon = _post(api, "/admin/coupons", body, key)
    assert status == 201, coupon
    return coupon


def _attach(api: Any, coupon_id: str, key: str = "d-1", **target: Any) -> dict[str, Any]:
    status, discount = _post(
        api, "/admin/discounts", {"coupon_id": coupon_id, "reason": "deal", **target}, key
    )
    assert status == 201, discount
    return discount


def _bill(world: World, monkeypatch: Any, days: int, calls: int = 3) -> None:
    """Bill the opening and ``days`` daily usage windows, ``calls`` API calls (10 minor units) each day."""
    world.subscribe("acme")
    for d in range(days):
        world.usage("acme", START + day(d, 2), calls)
    for d in range(days + 1):
        schedule(world, START + day(d, 1))
        work(world, START + day(d, 1), monkeypatch)


def _discount_lines(world: World) -> list[tuple[str, int]]:
    return [(i["kind"], ln["amount_minor"]) for i in world.invoices("acme") for ln in i["lines"]
            if ln["kind"] == "discount"]  # fmt: skip


def _used(world: World, discount_id: str) -> int:
    [sub] = world.subscriptions
    return world.ctx.billing.discounts.used(discount_id, sub["id"])


def test_a_repeating_percentage_discount_counts_two_periods_and_rounds_once(
    world: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN 12.5% for 2 periods on the customer; 3 calls a day (30 minor units)
    coupon = _coupon(api)
    discount = _attach(api, coupon["id"], customer_id="acme")
    # WHEN the opening and three days are billed
    _bill(world, monkeypatch, 3)
    # THEN the first two periods are discounted (the opening, nothing to discount, shares the first and
    # uses none): 12.5% of 30 is 3.75, rounded half-up once to 4; the third window is not discounted
    assert _discount_lines(world) == [("opening", 0), ("usage", -4), ("usage", -4)]
    assert _used(world, discount["id"]) == 2
    usage = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    assert [(i["subtotal_minor"], i.get("discounts_minor", 0), i["total_minor"]) for i in usage] == [
        (26, 4, 26), (26, 4, 26), (30, 0, 30)]  # fmt: skip
    [line] = [ln for ln in usage[0]["lines"] if ln["kind"] == "discount"]
    assert line["source"]["exact_minor"] == "3.75" and line["source"]["rounding"] == "half_up_once"
    assert line["source"]["allocations"] == [{"line_id": "usage:api_calls::0", "amount_minor": 4}]
    assert line["description"].startswith("Discount Launch (12.5% off, period 1 of 2")
    assert_books_agree(world, "acme")


def test_explain_names_the_coupon_and_what_it_took_off_each_line(
    world: World, api: Any, monkeypatch: Any
) -> None:
    coupon = _coupon(api, {**PERCENT, "duration": "forever", "duration_periods": None})
    _attach(api, coupon["id"], customer_id="acme")
    _bill(world, monkeypatch, 1)
    [usage] = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    status, explained = _get(api, f"/v1/invoices/{usage['id']}/explain", {"invoice_id": usage["id"]})
    assert status == 200
    by_kind = {ln["kind"]: ln for ln in explained["lines"]}
    assert by_kind["usage"]["discounts"][0]["coupon_id"] == coupon["id"]
    assert by_kind["usage"]["amount_after_discounts_minor"] == 26
    assert by_kind["discount"]["discount"]["base_minor"] == 30
    assert explained["discounts_minor"] == 4


def test_a_killed_worker_and_a_rerun_never_count_a_second_period(
    world: World, api: Any, monkeypatch: Any
) -> None:
    from neruba.dal import transaction
    from neruba.logic.billing import worker as billing_worker

    # GIVEN a once coupon on the subscription, the opening already billed (it takes the one period)...
    world.subscribe("acme")
    [sub] = world.subscriptions
    schedule(world, START)
    coupon = _coupon(api, {**PERCENT, "duration": "once", "duration_periods": None})
    # ... so attach after the opening: the first usage window is its period
    work(world, START, monkeypatch)
    discount = _attach(api, coupon["id"], subscription_id=sub["id"])
    world.usage("acme", START + day(0, 2), 3)
    schedule(world, START + day(1, 1))
    killed = [0]

    def dying(unit: Any) -> None:
        if any("DSCU#" in str(a) for a in unit):  # the window's transaction that counts the period
            killed[0] += 1
            raise Killed
        transaction.commit(unit)

    # WHEN the worker dies at that commit, then the job is retried twice (a duplicate)
    monkeypatch.setattr(billing_worker, "commit", dying)
    handler = worker(world, START + day(1, 1), monkeypatch)
    assert run_batch(handler, world.billing_queue, receive_batch(world.billing_queue, 10))
    assert killed == [1] and _used(world, discount["id"]) == 0
    monkeypatch.setattr(billing_worker, "commit", transaction.commit)
    schedule(world, START + day(1, 3))
    work(world, START + day(1, 3), monkeypatch)
    work(world, START + day(1, 3), monkeypatch)
    # THEN one period counted, one discount line
    assert _used(world, discount["id"]) == 1
    assert _discount_lines(world) == [("usage", -4)]
    # WHEN late events reach the draft and an operator reruns it
    world.usage("acme", START + day(0, 5), 5)
    [usage] = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    status, rerun = _post(api, f"/admin/invoices/{usage['id']}/rerun", {"reason": "late events"}, "r-1")
    assert status == 200 and rerun["action"] == "draft_recomputed", rerun
    # THEN the discount follows the new amount (12.5% of 80 = 10) and still counts one period
    assert _discount_lines(world) == [("usage", -10)]
    assert _used(world, discount["id"]) == 1
    # and the next window is not discounted
    schedule(world, START + day(2, 1))
    work(world, START + day(2, 1), monkeypatch)
    assert _discount_lines(world) == [("usage", -10)]
    assert_books_agree(world, "acme")


def test_exclusive_tax_per_line_after_discounts_is_a_liability(
    world: World, api: Any, monkeypatch: Any
) -> None:
    # GIVEN 20% VAT in DE, the customer in DE, a fixed 0.05 USD discount forever
    status, rate = _post(api, "/admin/tax-rates", VAT, "t-1")
    assert status == 201, rate
    place = {"country": "DE", "reason": "head office"}
    status, where = _post(api, "/admin/customers/acme/tax-jurisdiction", place, "j-1", method="PUT")
    assert status == 200 and [r["id"] for r in where["tax_rates"]] == [rate["id"]], where
    fixed = {
        "name": "Five",
        "amount_off_minor": 5,
        "currency": "USD",
        "duration": "forever",
        "reason": "promo",
    }
    _attach(api, _coupon(api, fixed)["id"], customer_id="acme")
    # WHEN a day of 3 calls (30) is billed
    _bill(world, monkeypatch, 1)
    [usage] = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    # THEN 30 - 5 = 25, 20% of 25 = 5 on top: total 30
    [line] = [ln for ln in usage["lines"] if ln["kind"] == "usage"]
    assert line["tax"]["amount_after_discounts_minor"] == 25 and line["tax"]["exclusive_minor"] == 5
    assert (usage["subtotal_minor"], usage["discounts_minor"], usage["tax_minor"], usage["total_minor"]) == (
        25, 5, 5, 30)  # fmt: skip
    balances = ledger().balances("acme")["USD"]
    assert balances["tax_payable"] == -5 and balances["revenue"] == -25
    assert_books_agree(world, "acme")


def test_inclusive_tax_moves_the_contained_tax_out_of_revenue(
    world: World, api: Any, monkeypatch: Any
) -> None:
    body = {**VAT, "inclusive": True, "country": None, "plan_code": "basic"}
    assert _post(api, "/admin/tax-rates", body, "t-1")[0] == 201
    _bill(world, monkeypatch, 1, calls=10)  # 100 containing 20% VAT: 16.67 -> 17
    [usage] = [i for i in world.invoices("acme") if i["kind"] == "usage"]
    assert (usage.get("tax_minor", 0), usage["tax_included_minor"], usage["total_minor"]) == (0, 17, 100)
    balances = ledger().balances("acme")["USD"]
    assert balances["tax_payable"] == -17 and balances["revenue"] == -83
    assert_books_agree(world, "acme")


@pytest.mark.parametrize(
    ("change", "key", "expected"),
    [
        ({}, None, (400, "idempotency_key_required")),
        ({"percent_off": None}, "k", (400, "coupon_amount_required")),
        ({"amount_off_minor": 5}, "k", (400, "coupon_amount_required")),
        ({"percent_off": None, "amount_off_minor": 5}, "k", (400, "currency_required")),
        ({"percent_off": None, "amount_off_minor": 0, "currency": "USD"}, "k", (400, "amount_not_positive")),
        (
            {"percent_off": None, "amount_off_minor": 10**16, "currency": "USD"},
            "k",
            (400, "amount_too_large"),
        ),
        ({"currency": "USD"}, "k", (400, "currency_not_allowed")),
        ({"duration_periods": None}, "k", (400, "duration_periods_required")),
        ({"duration_periods": 0}, "k", (400, "duration_periods_out_of_range")),
        ({"duration": "once"}, "k", (400, "duration_periods_not_allowed")),
        ({"percent_off": "0"}, "k", (422, "validation_error")),
        ({"percent_off": "100.5"}, "k", (422, "validation_error")),
        ({"percent_off": "\u0661\u0662"}, "k", (422, "validation_error")),  # other scripts' digits
        ({"percent_off": " 12"}, "k", (422, "validation_error")),
        ({"percent_off": "1e1"}, "k", (422, "validation_error")),
        ({"percent_off": "1_0"}, "k", (422, "validation_error")),
    ],
)
def test_bad_coupons_are_refused_with_a_code_and_write_nothing(
    world: World, api: Any, change: dict[str, Any], key: str | None, expected: tuple[int, str]
) -> None:
    body = {k: v for k, v in {**PERCENT, **change}.items() if v is not None}
    status, answer = _post(api, "/admin/coupons", body, key)
    assert (status, answer["error"]["code"]) == expected, answer
    assert _get(api, "/admin/coupons")[1]["data"] == []


def test_a_coupon_currency_is_taken_in_any_case_by_the_one_currency_rule(world: World, api: Any) -> None:
    fixed = {"name": "Five", "amount_off_minor": 5, "currency": "uSd", "duration": "forever",
             "reason": "promo"}  # fmt: skip
    assert _coupon(api, fixed)["currency"] == "USD"


def test_coupon_create_is_idempotent_audited_and_archivable(world: World, api: Any) -> None:
    coupon = _coupon(api)
    assert _post(api, "/admin/coupons", PERCENT, "c-1") == (201, coupon)
    status, answer = _post(api, "/admin/coupons", {**PERCENT, "name": "Other"}, "c-1")
    assert (status, answer["error"]["code"]) == (409, "idempotency_conflict")
    assert _get(api, f"/admin/coupons/{coupon['id']}", {"coupon_id": coupon["id"]}) == (200, coupon)
    status, archived = _post(api, f"/admin/coupons/{coupon['id']}/archive", {"reason": "ended"}, "a-1")
    assert status == 200 and archived["status"] == "archived"
    status, answer = _post(api, f"/admin/coupons/{coupon['id']}/archive", {"reason": "ended"}, "a-2")
    assert (status, answer["error"]["code"]) == (409, "coupon_archived")
    status, answer = _post(api, "/admin/discounts", {"coupon_id": coupon["id"], "customer_id": "acme",
                                                     "reason": "deal"}, "d-1")  # fmt: skip
    assert (status, answer["error"]["code"]) == (409, "coupon_archived")
    from neruba.dal.audit import AuditRepository

    records, _ = AuditRepository(get_settings().ops_table).list("_global", 100)
    mine = sorted(r["action"] for r in records if r["action"].startswith("coupon."))
    assert mine == ["coupon.archive", "coupon.create"]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({}, (400, "discount_target_required")),
        ({"customer_id": "acme", "plan_code": "basic", "plan_version": 1}, (400, "discount_target_required")),
        ({"plan_code": "basic"}, (400, "discount_target_required")),
        ({"customer_id": "nobody"}, (404, "customer_not_found")),
        ({"subscription_id": "sub_nope"}, (404, "subscription_not_found")),
        ({"plan_code": "basic", "plan_version": 9}, (404, "plan_version_not_found")),
    ],
)
def test_bad_discounts_are_refused(
    world: World, api: Any, target: dict[str, Any], expected: tuple[int, str]
) -> None:
    coupon = _coupon(api)
    status, answer = _post(api, "/admin/discounts", {"coupon_id": coupon["id"], "reason": "deal", **target})
    assert (status, answer["error"]["code"]) == expected, answer


def test_a_fixed_coupon_in_another_currency_is_refused_and_a_removed_discount_stops(
    world: World, api: Any, monkeypatch: Any
) -> None:
    euro = {"name": "E", "amount_off_minor": 5, "currency": "EUR", "duration": "forever", "reason": "promo"}
    status, answer = _post(api, "/admin/discounts", {"coupon_id": _coupon(api, euro)["id"],
                                                     "customer_id": "acme", "reason": "deal"})  # fmt: skip
    assert (status, answer["error"]["code"]) == (400, "currency_mismatch")
    coupon = _coupon(api, {**PERCENT, "duration": "forever", "duration_periods": None}, "c-2")
    discount = _attach(api, coupon["id"], plan_code="basic", plan_version=1)
    status, listed = _get(api, "/admin/discounts", query={"plan_code": "basic", "plan_version": "1"})
    assert status == 200 and [d["id"] for d in listed["data"]] == [discount["id"]]
    status, removed = _post(api, f"/admin/discounts/{discount['id']}/remove", {"reason": "over"}, "x-1")
    assert status == 200 and removed["status"] == "removed"
    status, answer = _post(api, f"/admin/discounts/{discount['id']}/remove", {"reason": "over"}, "x-2")
    assert (status, answer["error"]["code"]) == (409, "discount_removed")
    _bill(world, monkeypatch, 1)
    assert _discount_lines(world) == []


def test_the_upcoming_invoice_previews_discounts_and_taxes_without_counting_a_period(
    world: World, api: Any, monkeypatch: Any
) -> None:
    from neruba.logic.billing.upcoming import upcoming_invoice

    # GIVEN 12.5% once on the customer, 20% VAT in DE, and 3 calls so far in the current period
    discount = _attach(api, _coupon(api, {**PERCENT, "duration": "once", "duration_periods": None})["id"],
                       customer_id="acme")  # fmt: skip
    assert _post(api, "/admin/tax-rates", VAT, "t-1")[0] == 201
    place = {"country": "DE", "reason": "head office"}
    assert _post(api, "/admin/customers/acme/tax-jurisdiction", place, "j-1", method="PUT")[0] == 200
    world.subscribe("acme")
    world.usage("acme", START + day(0, 2), 3)
    # WHEN the preview is read twice
    for _ in range(2):
        body = upcoming_invoice(world.plans, world.ctx.usage, "acme", START + day(0, 5), world.ctx.billing)
        # THEN 30 - 4 (12.5% of 30, rounded once) = 26, VAT 5.2 -> 5 on top: 31
        [window] = body["windows"]
        assert (window["subtotal_minor"], window["discounts_minor"], window["tax_minor"]) == (26, 4, 5)
        assert window["total_minor"] == 31
        assert [ln["kind"] for ln in window["lines"]] == ["usage", "discount"]
    # and no period was counted by the preview
    assert _used(world, discount["id"]) == 0


def test_an_invoice_applies_at_most_ten_discounts_and_the_rest_wait(
    world: World, api: Any, monkeypatch: Any
) -> None:
    once = {**PERCENT, "percent_off": "1", "duration": "once", "duration_periods": None}
    coupon = _coupon(api, once)
    discounts = [_attach(api, coupon["id"], f"d-{n}", customer_id="acme") for n in range(11)]
    _bill(world, monkeypatch, 2, calls=100)
    # the opening shows the ten oldest (nothing to discount: no period used); the first usage invoice
    # takes them (each its one period), the second takes the eleventh
    by_invoice = [(i["kind"], len([ln for ln in i["lines"] if ln["kind"] == "discount"]))
                  for i in world.invoices("acme")]  # fmt: skip
    assert sorted(by_invoice) == [("opening", 10), ("usage", 1), ("usage", 10)]
    assert sum(_used(world, d["id"]) for d in discounts) == 11
    assert_books_agree(world, "acme")


@pytest.mark.parametrize("country", ["ZZ", "XX", "AA", "UK", "EU"])
def test_a_country_that_iso_3166_does_not_assign_is_refused_naming_the_field(
    world: World, api: Any, country: str
) -> None:
    status, answer = _post(api, "/admin/tax-rates", {**VAT, "country": country}, "t-1")
    assert (status, answer["error"]["code"]) == (422, "validation_error"), answer
    assert [(d["param"], d["code"]) for d in answer["error"]["details"]] == [("country", "country_unknown")]
    assert country in answer["error"]["details"][0]["message"]
    assert _get(api, "/admin/tax-rates")[1]["data"] == []
    place = {"country": country, "reason": "moved"}
    status, answer = _post(api, "/admin/customers/acme/tax-jurisdiction", place, "j-1", method="PUT")
    assert status == 422 and answer["error"]["details"][0]["param"] == "country", answer
    # a code that exists passes
    assert _post(api, "/admin/tax-rates", {**VAT, "country": "FR"}, "t-2")[0] == 201


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"country": None}, (400, "tax_rate_target_required")),
        ({"country": None, "state": "CA"}, (400, "state_needs_country")),
        ({"percentage": "101"}, (422, "validation_error")),
        ({"percentage": "\uff12\uff10"}, (422, "validation_error")),  # full-width digits
        ({"percentage": "2e1"}, (422, "validation_error")),
        ({"percentage": "+20"}, (422, "validation_error")),
        ({"country": "de"}, (422, "validation_error")),
        ({"country": None, "plan_code": "no-such-plan"}, (404, "plan_not_found")),
        ({"plan_code": "no-such-plan"}, (404, "plan_not_found")),
    ],
)
def test_bad_tax_rates_are_refused(
    world: World, api: Any, change: dict[str, Any], expected: tuple[int, str]
) -> None:
    body = {k: v for k, v in {**VAT, **change}.items() if v is not None}
    status, answer = _post(api, "/admin/tax-rates", body, "t-1")
    assert (status, answer["error"]["code"]) == expected, answer
    assert _get(api, "/admin/tax-rates")[1]["data"] == []


def test_an_archived_tax_rate_no_longer_applies(world: World, api: Any, monkeypatch: Any) -> None:
    _, rate = _post(api, "/admin/tax-rates", {**VAT, "country": None, "plan_code": "basic"}, "t-1")
    status, archived = _post(api, f"/admin/tax-rates/{rate['id']}/archive", {"reason": "repealed"}, "a-1")
    assert status == 200 and archived["status"] == "archived"
    status, answer = _post(api, f"/admin/tax-rates/{rate['id']}/archive", {"reason": "repealed"}, "a-2")
    assert (status, answer["error"]["code"]) == (409, "tax_rate_archived")
    _bill(world, monkeypatch, 1)
    assert all("tax" not in ln for i in world.invoices("acme") for ln in i["lines"])


def test_two_workers_on_one_window_count_its_period_once(world: World, api: Any, monkeypatch: Any) -> None:
    from neruba.dal import transaction
    from neruba.logic.billing import worker as billing_worker
    from neruba.models.billing import BillingJob

    # GIVEN a repeating coupon on the customer, the opening billed, a day of usage due
    discount = _attach(api, _coupon(api)["id"], customer_id="acme")
    world.subscribe("acme")
    [sub] = world.subscriptions
    schedule(world, START)
    work(world, START, monkeypatch)
    world.usage("acme", START + day(0, 2), 3)
    job = BillingJob(subscription_id=sub["id"], customer_id="acme", seq=1, window_id="w", kind="usage")
    now = START + day(1, 1)
    raced = [0]

    def racing(unit: Any) -> None:
        # the first worker has read everything and built its transaction; a second worker bills the same
        # window completely before the first one commits
        if raced[0] == 0 and any("DSCU#" in str(a) for a in unit):
            raced[0] += 1
            billing_worker.process_job(world.ctx, job, now)
        transaction.commit(unit)

    # WHEN both bill window 1
    monkeypatch.setattr(billing_worker, "commit", racing)
    outcome = billing_worker.process_job(world.ctx, job, now)
    # THEN the first is cancelled and counts it as already billed: one invoice, one period counted
    assert raced == [1] and outcome.invoiced == [] and outcome.already_billed == 1
    assert _used(world, discount["id"]) == 1  # this window's period (the opening shares it, used none)
    assert _discount_lines(world) == [("opening", 0), ("usage", -4)]
    assert_books_agree(world, "acme")


def _all_pages(api: Any, path: str, query: dict[str, str]) -> list[list[str]]:
    """The ids of each page of a list read two at a time, following ``next_cursor`` to the end."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        status, page = _get(
            api, path, query={**query, "limit": "2", **({"starting_after": cursor} if cursor else {})}
        )
        assert status == 200 and page["object"] == "list", page
        assert page["has_more"] is (page["next_cursor"] is not None), page
        pages.append([item["id"] for item in page["data"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


def test_coupons_tax_rates_and_discounts_are_listed_page_by_page(world: World, api: Any) -> None:
    # GIVEN three coupons, three tax rates and three discounts of one customer
    coupons = [_coupon(api, {**PERCENT, "name": f"Launch {n}"}, f"c-{n}")["id"] for n in range(3)]
    rates = []
    for n in range(3):
        status, rate = _post(api, "/admin/tax-rates", {**VAT, "display_name": f"VAT {n}"}, f"t-{n}")
        assert status == 201, rate
        rates.append(rate["id"])
    discounts = [_attach(api, coupon, f"d-{n}", customer_id="acme")["id"] for n, coupon in enumerate(coupons)]
    # WHEN each list is read two at a time
    lists = {
        "/admin/coupons": ({}, coupons),
        "/admin/tax-rates": ({}, rates),
        "/admin/discounts": ({"customer_id": "acme"}, discounts),
    }
    for path, (query, made) in lists.items():
        pages = _all_pages(api, path, query)
        # THEN two pages give every item once, in id order
        assert [len(page) for page in pages] == [2, 1], (path, pages)
        assert [i for page in pages for i in page] == sorted(made), path
    # AND a cursor of one list is refused by another, or by the same list with other filters
    _, first = _get(api, "/admin/coupons", query={"limit": "2"})
    status, answer = _get(api, "/admin/tax-rates", query={"starting_after": first["next_cursor"]})
    assert (status, answer["error"]["code"], answer["error"]["param"]) == (
        400,
        "invalid_cursor",
        "starting_after",
    )
    _, first = _get(api, "/admin/discounts", query={"customer_id": "acme", "limit": "2"})
    other = {"customer_id": "other", "starting_after": first["next_cursor"]}
    status, answer = _get(api, "/admin/discounts", query=other)
    assert (status, answer["error"]["code"]) == (400, "invalid_cursor")
