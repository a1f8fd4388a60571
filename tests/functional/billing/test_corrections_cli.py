"""The ``neruba`` correction commands against the real billing API handler: each command sends its route
with the Idempotency-Key (given, or a new one it prints), the reason and ticket; the same key repeats the
first result; a refusal exits 1 with the API's code."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from neruba.settings import get_settings
from neruba_tools.api_call import execute
from neruba_tools.cli import build_parser
from tests.functional.billing.conftest import World
from tests.support.api import api_event, call


@pytest.fixture
def neruba(world: World) -> Any:
    """Run ``neruba ARGS`` against the billing API handler; returns (exit code, stdout JSON, stderr, sent)."""
    from functions.billing_api.app import lambda_handler
    from neruba import bootstrap

    bootstrap.install(billing=world.ctx)
    sent: list[tuple[str, str, Any, dict[str, str]]] = []

    def transport(method: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
        sent.append((method, path, body, headers))
        split = urlsplit(path)
        query = dict(parse_qsl(split.query)) or None
        status, answer, _ = call(lambda_handler, api_event(method, split.path, body=body, headers=headers,
                                                           query=query))  # fmt: skip
        return status, answer

    def run(*argv: str) -> tuple[int, Any, str, list[Any]]:
        args = build_parser().parse_args(list(argv))
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out):
            code = execute(args, transport, err)
        text = out.getvalue()
        return code, json.loads(text) if text else None, err.getvalue(), sent

    return run


def test_one_off_charges_tax_rates_coupons_and_credit_notes_from_the_cli(world: World, neruba: Any) -> None:
    world.subscribe("acme")
    code, rate, _, _ = neruba("tax-rates", "create", "--display-name", "VAT", "--percentage", "20",
                              "--exclusive", "--country", "DE", "--reason", "DE VAT",
                              "--ticket", "FIN-1")  # fmt: skip
    assert code == 0 and rate["percentage"] == "20"
    code, where, _, _ = neruba(
        "tax-rates", "set-jurisdiction", "acme", "--country", "DE", "--reason", "office"
    )
    assert code == 0 and [r["id"] for r in where["tax_rates"]] == [rate["id"]]
    assert where["provider"] == "neruba"
    code, delegated, _, _ = neruba("tax-rates", "set-jurisdiction", "acme", "--country", "DE",
                                   "--provider", "stripe_tax", "--reason", "Stripe Tax")  # fmt: skip
    assert code == 0 and (delegated["provider"], delegated["tax_rates"]) == ("stripe_tax", []), delegated
    code, where, _, _ = neruba(
        "tax-rates", "set-jurisdiction", "acme", "--country", "DE", "--provider", "neruba", "--reason", "back"
    )
    assert code == 0 and [r["id"] for r in where["tax_rates"]] == [rate["id"]]
    code, coupon, _, _ = neruba("coupons", "create", "--name", "Ten", "--percent-off", "10", "--duration",
                                "forever", "--reason", "deal")  # fmt: skip
    assert code == 0
    code, discount, _, _ = neruba("discounts", "create", "--coupon", coupon["id"], "--customer", "acme",
                                  "--reason", "deal")  # fmt: skip
    assert code == 0 and discount["coupon_id"] == coupon["id"]

    # a setup fee invoiced now: 10% off 1000, 20% of the 900 left
    code, charge, err, sent = neruba("one-off-charges", "create", "acme", "--description", "Setup",
                                     "--amount-minor", "1000", "--currency", "USD", "--mode", "invoice_now",
                                     "--reason", "onboarding", "--ticket", "T-1",
                                     "--metadata", "order=o-1")  # fmt: skip
    assert code == 0 and charge["status"] == "invoiced", err
    key = sent[-1][3]["Idempotency-Key"]
    assert key.startswith("cli-") and f"Idempotency-Key: {key}" in err
    assert sent[-1][2]["metadata"] == {"order": "o-1"} and sent[-1][2]["ticket"] == "T-1"
    invoice = charge["invoice_id"]
    assert world.ctx.invoices.get(invoice).total_minor == 1080  # type: ignore[union-attr]

    # a credit note of 300 of the fee's line, twice with one key: one note
    line = f"one_off:{charge['id']}"
    args = ("credit-notes", "create", invoice, "--line", f"{line}=300", "--reason", "overbilled",
            "--ticket", "T-2", "--idempotency-key", "cn-cli-1")  # fmt: skip
    code, note, _, _ = neruba(*args)
    assert code == 0 and (note["amount_minor"], note["tax_minor"]) == (360, 60)
    assert neruba(*args)[:2] == (0, note)
    code, listed, _, _ = neruba("credit-notes", "list", invoice)
    assert [n["id"] for n in listed["data"]] == [note["id"]]
    assert neruba("credit-notes", "show", note["id"])[1] == note
    assert neruba("credit-notes", "explain", note["id"])[1]["posting"]["entries"]

    # a refusal exits 1 with the code
    code, _, err, _ = neruba(
        "credit-notes", "create", invoice, "--line", f"{line}=10000", "--reason", "too much"
    )
    assert code == 1 and "409 credit_note_exceeds_creditable" in err

    from neruba.dal.audit import AuditRepository

    records, _ = AuditRepository(get_settings().ops_table).list("acme", 100)
    assert {(r["action"], r["ticket"]) for r in records} >= {
        ("one_off_charge.create", "T-1"),
        ("credit_note.create", "T-2"),
    }


def test_void_and_pending_charges_from_the_cli(world: World, neruba: Any) -> None:
    world.subscribe("acme")
    code, charge, _, _ = neruba("one-off-charges", "create", "acme", "--description", "Training",
                                "--quantity", "3", "--unit-price", "33.335", "--currency", "USD",
                                "--mode", "next_invoice", "--reason", "services")  # fmt: skip
    assert code == 0 and (charge["status"], charge["amount_minor"]) == ("pending", 10001)
    code, listed, _, sent = neruba("one-off-charges", "list", "acme", "--status", "pending")
    assert [c["id"] for c in listed["data"]] == [charge["id"]] and sent[-1][1].endswith("?status=pending")
    code, voided, _, _ = neruba("one-off-charges", "void", "acme", charge["id"], "--reason", "waived")
    assert code == 0 and voided["status"] == "void"
    # the same command again is a retry (the key follows from the request): the same answer, nothing new
    assert neruba("one-off-charges", "void", "acme", charge["id"], "--reason", "waived")[:2] == (0, voided)

    code, fee, _, _ = neruba("one-off-charges", "create", "acme", "--description", "Setup", "--amount-minor",
                             "500", "--currency", "USD", "--mode", "invoice_now",
                             "--reason", "setup fee")  # fmt: skip
    code, done, _, _ = neruba(
        "invoices", "void", fee["invoice_id"], "--reason", "wrong amount", "--ticket", "T-3"
    )
    assert code == 0 and done["invoice"]["status"] == "void"
    assert done["replacement"]["status"] == "finalized" and done["replacement"]["total_minor"] == 500


def test_usage_errors_exit_before_any_call() -> None:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["credit-notes", "create", "in_1", "--line", "a:5", "--reason", "x"])
    with pytest.raises(SystemExit):
        parser.parse_args(["invoices", "void", "in_1"])  # --reason is required


def test_an_invoice_rerun_from_the_cli(world: World, neruba: Any, monkeypatch: Any) -> None:
    from tests.functional.billing.backfill_support import billed_days

    # GIVEN day 0 billed 3 calls and finalized
    billed_days(world, monkeypatch, [3])
    (invoice,) = [i for i in world.invoices("acme") if i["kind"] == "usage" and i["subtotal_minor"] == 30]

    # WHEN an operator reruns it from the CLI, nothing having changed
    code, answer, err, sent = neruba("invoices", "rerun", invoice["id"], "--reason", "late events checked",
                                     "--ticket", "FIN-9")  # fmt: skip

    # THEN the rerun route is called with the reason and ticket and an Idempotency-Key; nothing to bill
    assert code == 0 and answer["action"] == "unchanged", (answer, err)
    method, path, body, headers = sent[-1]
    assert (method, path) == ("POST", f"/admin/invoices/{invoice['id']}/rerun")
    assert body == {"reason": "late events checked", "ticket": "FIN-9"} and headers["Idempotency-Key"]
    # AND the same command later is a new rerun (a new key), never the first answer replayed: it bills the
    # late call counted since
    from tests.functional.billing.conftest import START
    from tests.functional.billing.helpers import day

    world.usage("acme", START + day(0, 2), 4)
    code, again, err, sent_again = neruba(
        "invoices", "rerun", invoice["id"], "--reason", "late events checked", "--ticket", "FIN-9"
    )
    assert code == 0 and again["action"] != "unchanged", (again, err)
    assert sent_again[-1][3]["Idempotency-Key"] != headers["Idempotency-Key"]
    # AND a refusal exits 1 with its code
    code, _, err, _ = neruba("invoices", "rerun", "in_" + "0" * 24, "--reason", "no such invoice")
    assert code == 1 and "invoice_not_found" in err, err
