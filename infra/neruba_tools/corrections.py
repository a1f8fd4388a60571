"""``neruba`` commands for the corrections a finance team runs: credit notes, invoice voids and reruns,
one-off charges, coupons and discounts, tax rates and jurisdictions (docs/operations.md, "Correction
commands"; docs/runbooks/credit-notes.md, "With the neruba CLI").

Each command is one call of the admin API (the same routes the Python client has), with an admin-scope
key (``--api-key`` or ``NERUBA_API_KEY``) against ``--base-url`` (or ``NERUBA_BASE_URL``, or ``--stack``'s
``ApiUrl``), made by ``neruba_tools.api_call`` as for ``neruba events``. A write sends ``--reason`` and
``--ticket`` in its body and an ``Idempotency-Key`` header: ``--idempotency-key``, or by default one
derived from the request (method, path and body), so running the same command again is a retry that
returns the first result and writes nothing twice; give another key to do the same thing a second time on
purpose. ``invoices rerun`` takes a new key each run instead (a rerun bills only what is not recorded yet:
run again later, it bills what was counted since, never twice). The key is printed on stderr. The answer
is printed as JSON; exit code 0 on success, 1 when the API refused (``refused: HTTP 409 code: message``
and the error's details on stderr), 2 on a usage error or when the call could not be made.

    neruba credit-notes create in_... --reason "outage" --ticket T-1 --line usage:api:-:0=500
    neruba invoices void in_... --reason "wrong customer" --regenerate recompute
    neruba invoices rerun in_... --reason "late events voided" --ticket FIN-9
    neruba one-off-charges create acme --description "Setup" --amount-minor 25000 --currency USD \\
        --mode invoice_now --reason onboarding
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from neruba_tools import api_call, api_target


def _p(value: str) -> str:
    return quote(value, safe="")


def _minor(text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of minor units") from exc


def _line(text: str) -> dict[str, Any]:
    """``LINE_ID=AMOUNT_MINOR`` or ``LINE_ID@QUANTITY`` (the last ``=`` / ``@`` splits: line ids may
    contain either)."""
    if "=" in text:
        line_id, _, amount = text.rpartition("=")
        return {"line_id": line_id, "amount_minor": _minor(amount)}
    if "@" in text:
        line_id, _, quantity = text.rpartition("@")
        return {"line_id": line_id, "quantity": quantity}
    raise argparse.ArgumentTypeError(f"{text!r}: give LINE_ID=AMOUNT_MINOR or LINE_ID@QUANTITY")


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: give KEY=VALUE")
    return key, value


def _given(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _write(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--reason", required=True, help="why (stored in the audit record)")
    parser.add_argument("--ticket", help="the support or finance ticket (stored in the audit record)")
    parser.add_argument(
        "--idempotency-key",
        "--key",
        help="default: derived from the request, so running it again is a retry (invoices rerun: a new one)",
    )
    return parser


# each command: (method, path, body, query) from the parsed arguments
Build = Callable[[argparse.Namespace], tuple[str, str, Any, dict[str, str]]]


def _credit_note(a: argparse.Namespace) -> tuple[str, str, Any, dict[str, str]]:
    body = _given(
        reason=a.reason, ticket=a.ticket, memo=a.memo, lines=a.line or None, credit_amount_minor=a.credit,
        refund_amount_minor=a.refund, out_of_band_amount_minor=a.out_of_band,
    )  # fmt: skip
    return "POST", f"/admin/invoices/{_p(a.invoice)}/credit-notes", body, {}


def _void(a: argparse.Namespace) -> tuple[str, str, Any, dict[str, str]]:
    body = _given(reason=a.reason, ticket=a.ticket, regenerate=a.regenerate)
    return "POST", f"/admin/invoices/{_p(a.invoice)}/void", body, {}


def _rerun(a: argparse.Namespace) -> tuple[str, str, Any, dict[str, str]]:
    return "POST", f"/admin/invoices/{_p(a.invoice)}/rerun", _given(reason=a.reason, ticket=a.ticket), {}


def _one_off(a: argparse.Namespace) -> tuple[str, str, Any, dict[str, str]]:
    body = _given(
        description=a.description, currency=a.currency, mode=a.mode, reason=a.reason, ticket=a.ticket,
        amount_minor=a.amount_minor, quantity=a.quantity, unit_price=a.unit_price,
        metadata=dict(a.metadata) if a.metadata else None,
    )  # fmt: skip
    return "POST", f"/admin/customers/{_p(a.customer)}/one-off-charges", body, {}


def _coupon(a: argparse.Namespace) -> tuple[str, str, Any, dict[str, str]]:
    body = _given(
        name=a.name, duration=a.duration, duration_periods=a.duration_periods, percent_off=a.percent_off,
        amount_off_minor=a.amount_off_minor, currency=a.currency, reason=a.reason, ticket=a.ticket,
    )  # fmt: skip
    return "POST", "/admin/coupons", body, {}


def _discount(a: argparse.Namespace) -> tuple[str, str, Any, dict[str, str]]:
    body = _given(
        coupon_id=a.coupon, customer_id=a.customer, subscription_id=a.subscription, plan_code=a.plan,
        plan_version=a.plan_version, reason=a.reason, ticket=a.ticket,
    )  # fmt: skip
    return "POST", "/admin/discounts", body, {}


def _tax_rate(a: argparse.Namespace) -> tuple[str, str, Any, dict[str, str]]:
    body = _given(
        display_name=a.display_name, percentage=a.percentage, inclusive=a.inclusive, country=a.country,
        state=a.state, plan_code=a.plan, reason=a.reason, ticket=a.ticket,
    )  # fmt: skip
    return "POST", "/admin/tax-rates", body, {}


def _jurisdiction(a: argparse.Namespace) -> tuple[str, str, Any, dict[str, str]]:
    body = _given(country=a.country, state=a.state, provider=a.provider, reason=a.reason, ticket=a.ticket)
    return "PUT", f"/admin/customers/{_p(a.customer)}/tax-jurisdiction", body, {}


def _archive(path: str, name: str, action: str) -> Build:
    """A POST ``{reason, ticket}`` on ``path`` with the id argument ``name`` and the last part ``action``."""

    def build(a: argparse.Namespace) -> tuple[str, str, Any, dict[str, str]]:
        body = _given(reason=a.reason, ticket=a.ticket)
        return "POST", path.format(_p(getattr(a, name))) + f"/{action}", body, {}

    return build


def _get(path: str, *names: str, query: tuple[str, ...] = ()) -> Build:
    def build(a: argparse.Namespace) -> tuple[str, str, Any, dict[str, str]]:
        params = {q: str(getattr(a, q)) for q in query if getattr(a, q, None) is not None}
        return "GET", path.format(*(_p(getattr(a, n)) for n in names)), None, params

    return build


def _command(parser: argparse.ArgumentParser, build: Build) -> argparse.ArgumentParser:
    parser.set_defaults(func=api_call.run, build=build)
    api_target.add_arguments(parser, "an admin-scope key", again=True)  # before or after the subcommand
    return parser


def add_parser(commands: Any) -> None:
    def group(name: str, text: str) -> Any:
        made = commands.add_parser(name, help=text)
        api_target.add_arguments(made, "an admin-scope key")
        return made.add_subparsers(dest="action", required=True)

    notes = group("credit-notes", "credit notes against finalized invoices")
    create = _write(
        _command(notes.add_parser("create", help="issue a credit note (whole, or --line)"), _credit_note)
    )
    create.add_argument("invoice", help="the invoice id (in_...)")
    create.add_argument(
        "--line",
        action="append",
        type=_line,
        help="LINE_ID=AMOUNT_MINOR or LINE_ID@QUANTITY (repeatable; none: the whole invoice)",
    )
    create.add_argument("--credit", type=_minor, help="paid part to the customer's balance (minor units)")
    create.add_argument("--refund", type=_minor, help="paid part refunded (minor units)")
    create.add_argument("--out-of-band", type=_minor, help="paid part returned outside Neruba (minor units)")
    create.add_argument("--memo", help="a note shown on the credit note")  # fmt: skip
    _command(notes.add_parser("list", help="an invoice's credit notes"), _get(
        "/v1/invoices/{}/credit-notes", "invoice")).add_argument("invoice")  # fmt: skip
    _command(notes.add_parser("show", help="one credit note"), _get(
        "/v1/credit-notes/{}", "note")).add_argument("note", help="cn_...")  # fmt: skip
    _command(notes.add_parser("explain", help="a credit note's lines and posting"), _get(
        "/v1/credit-notes/{}/explain", "note")).add_argument("note", help="cn_...")  # fmt: skip

    invoices = group("invoices", "invoice corrections")
    void = _write(
        _command(invoices.add_parser("void", help="void an invoice and issue its replacement"), _void)
    )
    void.add_argument("invoice", help="the invoice id (in_...)")
    void.add_argument("--regenerate", choices=("same_lines", "recompute"), help="default same_lines")
    again = "rate an invoice again from its surviving events and bill the difference"
    rerun = _write(_command(invoices.add_parser("rerun", help=again), _rerun))
    rerun.set_defaults(fresh_key=True)  # the same rerun later bills what changed since: never a replay
    rerun.add_argument("invoice", help="the invoice id (in_...)")

    charges = group("one-off-charges", "one-off charges")
    add = _write(_command(charges.add_parser("create", help="add a charge"), _one_off))
    add.add_argument("customer")
    add.add_argument("--description", required=True)
    add.add_argument("--amount-minor", type=_minor)
    add.add_argument("--quantity", help="exact decimal, with --unit-price")
    add.add_argument("--unit-price", help="exact decimal, with --quantity")
    add.add_argument("--currency", required=True)
    add.add_argument("--mode", choices=("invoice_now", "next_invoice"), required=True)
    add.add_argument("--metadata", action="append", type=_pair, help="KEY=VALUE (repeatable)")
    listing = _command(charges.add_parser("list", help="a customer's charges"), _get(
        "/admin/customers/{}/one-off-charges", "customer", query=("status",)))  # fmt: skip
    listing.add_argument("customer")
    listing.add_argument("--status", choices=("pending", "invoiced", "void"))
    drop = _write(_command(charges.add_parser("void", help="void a pending charge"), _void_charge))
    drop.add_argument("customer")
    drop.add_argument("charge")

    coupons = group("coupons", "coupons")
    coupon = _write(_command(coupons.add_parser("create", help="create a coupon"), _coupon))
    coupon.add_argument("--name", required=True)
    coupon.add_argument("--percent-off", help="exact decimal, 0 to 100")
    coupon.add_argument("--amount-off-minor", type=_minor)
    coupon.add_argument("--currency", help="with --amount-off-minor")
    coupon.add_argument("--duration", choices=("once", "repeating", "forever"), required=True)
    coupon.add_argument("--duration-periods", type=int, help="with --duration repeating")
    _command(coupons.add_parser("list", help="every coupon"), _get("/admin/coupons"))
    _write(_command(coupons.add_parser("archive", help="archive a coupon"), _archive(
        "/admin/coupons/{}", "coupon", "archive"))).add_argument("coupon")  # fmt: skip

    discounts = group("discounts", "discounts (a coupon on a customer, subscription or plan version)")
    attach = _write(_command(discounts.add_parser("create", help="attach a coupon"), _discount))
    attach.add_argument("--coupon", required=True)
    attach.add_argument("--customer")
    attach.add_argument("--subscription")
    attach.add_argument("--plan")
    attach.add_argument("--plan-version", type=int)
    shown = _command(discounts.add_parser("list", help="discounts"), _get(
        "/admin/discounts", query=("customer_id", "plan_code", "plan_version")))  # fmt: skip
    shown.add_argument("--customer", dest="customer_id")
    shown.add_argument("--plan", dest="plan_code")
    shown.add_argument("--plan-version", type=int)
    _write(_command(discounts.add_parser("remove", help="remove a discount"), _archive(
        "/admin/discounts/{}", "discount", "remove"))).add_argument("discount")  # fmt: skip

    rates = group("tax-rates", "tax rates and customers' tax jurisdictions")
    rate = _write(_command(rates.add_parser("create", help="create a tax rate"), _tax_rate))
    rate.add_argument("--display-name", required=True)
    rate.add_argument("--percentage", required=True, help="exact decimal, 0 to 100")
    kind = rate.add_mutually_exclusive_group(required=True)
    kind.add_argument("--inclusive", dest="inclusive", action="store_true", default=None)
    kind.add_argument("--exclusive", dest="inclusive", action="store_false")
    rate.add_argument("--country")
    rate.add_argument("--state")
    rate.add_argument("--plan")
    _command(rates.add_parser("list", help="every tax rate"), _get("/admin/tax-rates"))
    _write(_command(rates.add_parser("archive", help="archive a tax rate"), _archive(
        "/admin/tax-rates/{}", "rate", "archive"))).add_argument("rate")  # fmt: skip
    _command(rates.add_parser("jurisdiction", help="a customer's jurisdiction and rates"), _get(
        "/admin/customers/{}/tax-jurisdiction", "customer")).add_argument("customer")  # fmt: skip
    where = _write(_command(rates.add_parser("set-jurisdiction", help="set a customer's jurisdiction"),
                            _jurisdiction))  # fmt: skip
    where.add_argument("customer")
    where.add_argument("--country", required=True)
    where.add_argument("--state")
    where.add_argument(
        "--provider", choices=("neruba", "stripe_tax"), help="who computes the tax (default neruba)"
    )


def _void_charge(a: argparse.Namespace) -> tuple[str, str, Any, dict[str, str]]:
    body = _given(reason=a.reason, ticket=a.ticket)
    return "POST", f"/admin/customers/{_p(a.customer)}/one-off-charges/{_p(a.charge)}/void", body, {}
