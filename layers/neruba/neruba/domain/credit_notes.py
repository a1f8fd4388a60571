"""What a credit note may take back from a finalized invoice, line by line, and where the money goes.

A credit note credits lines of one invoice, each by an amount or by a quantity, or the whole invoice:

- **Per line**: never more than the line's amount less what earlier credit notes took from it (a line
  whose amount is not positive, such as a negative adjustment, is not creditable). By quantity, the
  amount is cumulative: the line's amount x ``units credited after / line quantity`` rounded half-up to a
  minor unit once (the one rounding rule), less what the line already credited (by quantity or by amount).
  Rounding therefore never adds up across notes, and the last units of a line take exactly what is left
  of its amount.
- **Per invoice**: never more than what is still creditable: what is still due (``remaining_due``) plus
  what was paid and can still be taken back (``refundable``: payments less refunds, disputes and earlier
  credit notes after payment). An invoice partly paid by prepaid credit therefore credits at most what
  the customer owes or paid.
- **Whole invoice** (no lines named): every line's remainder in invoice order, up to what the invoice
  still has creditable.

**Tax** (docs/billing.md, "Credit notes on taxed invoices"): a line that was taxed gives back its tax with
its amount. A credit of ``c`` on a line takes the tax :func:`domain.taxes.line_tax` gives ``c`` at the
line's rates (exclusive rates: the tax of the credited net, rounded once; inclusive rates: the tax ``c``
contains), per rate never more than what is left of the line's tax for that rate; the credit that takes
the last of a line's amount takes exactly what is left of each rate's tax. A request may name the tax to
give back per rate instead (a correction gives back the tax collected for the usage it takes back), still
within what is left of each rate's tax. A line's amount is what it
was billed for after discounts. The note's total is the credited amounts plus their exclusive tax, and
that total is what the invoice's creditable amount bounds.

The amount first lowers what is still due (``pre_payment``); the rest (``post_payment``) was paid, and is
split into ``credit`` (a balance in the customer's favour), ``refund`` (money sent back) and
``out_of_band`` (returned outside the system). Without a split, the whole post-payment part is credit.

Example:
    >>> lines = [LineState("a", 1000, Decimal(10)), LineState("b", 500, None)]
    >>> taken = credit_lines(lines, [LineRequest("a", quantity=Decimal(3))], 1500)
    >>> [(c.line_id, c.amount_minor, c.quantity) for c in taken]
    [('a', 300, Decimal('3'))]
    >>> split_amount(800, remaining_due=300, refundable=1200)
    Split(pre_payment=300, credit=500, refund=0, out_of_band=0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext

from neruba.domain.taxes import TaxRate, line_tax
from neruba.validation import param_path

__all__ = [
    "CreditNoteRuleError",
    "CreditedLine",
    "CreditedTax",
    "LineRequest",
    "LineState",
    "Split",
    "credit_lines",
    "split_amount",
]


class CreditNoteRuleError(ValueError):
    """A credit note breaks a rule; ``code`` and ``param`` name which."""

    def __init__(self, message: str, *, code: str, param: str | None = None, conflict: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.conflict = conflict
        """True when the rule depends on what was credited before (a 409), False for the request itself."""


@dataclass(frozen=True, slots=True)
class LineState:
    """One invoice line and what earlier credit notes took from it."""

    line_id: str
    amount_minor: int  # what the line was billed for, after discounts (tax contained when inclusive)
    quantity: Decimal | None
    credited_minor: int = 0
    credited_quantity: Decimal = Decimal(0)
    rates: tuple[TaxRate, ...] = ()  # the rates that taxed the line
    tax_minor: tuple[int, ...] = ()  # the line's tax per rate (same order)
    credited_tax_minor: tuple[int, ...] = ()  # what earlier credit notes took of it per rate (or empty)
    corrected_minor: int = 0  # of ``credited_minor``, what corrections' notes took (usage taken back)
    corrected_tax_minor: tuple[int, ...] = ()  # of ``credited_tax_minor``, what corrections' notes took

    def share_left(self) -> int:
        """What a correction may still take back of the line: its amount less what corrections' notes
        took (an operator's note took part of it as a goodwill, not as usage taken back)."""
        return max(self.amount_minor - self.corrected_minor, 0)

    def tax_share_left(self) -> tuple[int, ...]:
        """``share_left`` of the line's tax, per rate."""
        fixed = self.corrected_tax_minor or (0,) * len(self.rates)
        return tuple(max(t - c, 0) for t, c in zip(self.tax_minor, fixed, strict=True))

    def tax_left(self) -> tuple[int, ...]:
        """What is left of the line's tax, per rate."""
        taken = self.credited_tax_minor or (0,) * len(self.rates)
        return tuple(max(t - c, 0) for t, c in zip(self.tax_minor, taken, strict=True))

    @property
    def remaining_minor(self) -> int:
        return max(self.amount_minor - self.credited_minor, 0)

    @property
    def remaining_quantity(self) -> Decimal | None:
        return None if self.quantity is None else self.quantity - self.credited_quantity


@dataclass(frozen=True, slots=True)
class LineRequest:
    """One line to credit: by ``amount_minor`` or by ``quantity`` (exactly one)."""

    line_id: str
    amount_minor: int | None = None
    quantity: Decimal | None = None
    tax_minor: tuple[tuple[str, int], ...] | None = None
    """The tax to give back per rate id, when already known (a correction gives back the tax collected
    for the usage it takes back); None: the tax ``amount_minor`` carries at the line's rates."""


@dataclass(frozen=True, slots=True)
class CreditedTax:
    """The tax one rate gives back with a credited line."""

    rate: TaxRate
    amount_minor: int


@dataclass(frozen=True, slots=True)
class CreditedLine:
    """What the credit note takes from one line (``quantity`` when credited by quantity or whole) and the
    tax it gives back with it."""

    line_id: str
    amount_minor: int
    quantity: Decimal | None
    tax: tuple[CreditedTax, ...] = ()

    @property
    def exclusive_minor(self) -> int:
        return sum(t.amount_minor for t in self.tax if not t.rate.inclusive)

    @property
    def inclusive_minor(self) -> int:
        return sum(t.amount_minor for t in self.tax if t.rate.inclusive)

    @property
    def total_minor(self) -> int:
        """What the line's credit is worth to the customer: its amount and the tax added on top."""
        return self.amount_minor + self.exclusive_minor


@dataclass(frozen=True, slots=True)
class Split:
    """Where a credit note's amount goes; the four parts add up to it."""

    pre_payment: int
    credit: int
    refund: int
    out_of_band: int

    @property
    def total(self) -> int:
        return self.pre_payment + self.credit + self.refund + self.out_of_band

    @property
    def post_payment(self) -> int:
        return self.credit + self.refund + self.out_of_band


def credited_tax(
    line: LineState, amount: int, currency: str, known: tuple[tuple[str, int], ...] | None = None
) -> tuple[CreditedTax, ...]:
    """The tax a credit of ``amount`` on ``line`` gives back (see the module docstring); ``known``: the
    tax per rate id to give back instead of the tax ``amount`` carries (still within what is left).

    Example:
        >>> vat = TaxRate("txr_1", Decimal("5"))
        >>> line = LineState("a", 50, None, 30, rates=(vat,), tax_minor=(3,), credited_tax_minor=(3,))
        >>> [t.amount_minor for t in credited_tax(line, 10, "USD")]  # 0.5 would round up: none is left
        [0]
    """
    if not line.rates:
        return ()
    left = line.tax_left()
    if amount >= line.remaining_minor and (amount > 0 or known is None):
        return tuple(CreditedTax(r, t) for r, t in zip(line.rates, left, strict=True))
    if known is not None:
        given = dict(known)
        return tuple(
            CreditedTax(r, min(max(given.get(r.tax_rate_id, 0), 0), t))
            for r, t in zip(line.rates, left, strict=True)
        )
    tax = line_tax(amount, line.rates, currency)
    return tuple(
        CreditedTax(r, min(part.amount_minor, t))
        for r, part, t in zip(line.rates, tax.parts_in(line.rates), left, strict=True)
    )


def _credited(
    line: LineState,
    amount: int,
    quantity: Decimal | None,
    currency: str,
    known: tuple[tuple[str, int], ...] | None = None,
) -> CreditedLine:
    return CreditedLine(line.line_id, amount, quantity, credited_tax(line, amount, currency, known))


def _half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _by_quantity(line: LineState, index: int, quantity: Decimal) -> int:
    param = param_path("lines", index, "quantity")
    left = line.remaining_quantity
    if line.quantity is None or line.quantity <= 0 or left is None:
        raise CreditNoteRuleError(
            f"Line {line.line_id!r} has no quantity; credit it by amount_minor.",
            code="line_has_no_quantity",
            param=param,
        )
    if quantity <= 0:
        raise CreditNoteRuleError(
            "A credited quantity must be positive.", code="quantity_not_positive", param=param
        )
    if quantity > left or line.remaining_minor <= 0:
        raise CreditNoteRuleError(
            f"Line {line.line_id!r} has {left} units and {line.remaining_minor} minor units left to credit; "
            f"{quantity} units asked.",
            code="credit_note_exceeds_creditable",
            param=param,
            conflict=True,
        )
    if quantity == left:
        return line.remaining_minor
    with localcontext(Context(prec=100)):
        after = _half_up(Decimal(line.amount_minor) * (line.credited_quantity + quantity) / line.quantity)
    amount = min(after - line.credited_minor, line.remaining_minor)
    if amount <= 0:
        raise CreditNoteRuleError(
            f"{quantity} more units of line {line.line_id!r} bring what it credited to {after} minor units "
            f"and {line.credited_minor} are already credited, so they take nothing: credit more units, or "
            "credit it by amount_minor.",
            code="amount_not_positive",
            param=param,
        )
    return amount


def _one(line: LineState, index: int, request: LineRequest, currency: str) -> CreditedLine:
    if (request.amount_minor is None) == (request.quantity is None):
        raise CreditNoteRuleError(
            "Give each line amount_minor or quantity (one of the two).",
            code="credit_note_line_amount_required",
            param=param_path("lines", index),
        )
    if line.amount_minor <= 0:
        raise CreditNoteRuleError(
            f"Line {line.line_id!r} charges nothing; only a line with a positive amount can be credited.",
            code="line_not_creditable",
            param=param_path("lines", index, "line_id"),
        )
    if request.quantity is not None:
        amount = _by_quantity(line, index, request.quantity)
        return _credited(line, amount, request.quantity, currency)
    assert request.amount_minor is not None
    param = param_path("lines", index, "amount_minor")
    if request.amount_minor < 0 or (request.amount_minor == 0 and not request.tax_minor):
        raise CreditNoteRuleError(
            "A credited amount must be positive.", code="amount_not_positive", param=param
        )
    if request.amount_minor > line.remaining_minor:
        raise CreditNoteRuleError(
            f"Line {line.line_id!r} has {line.remaining_minor} left to credit; {request.amount_minor} asked.",
            code="credit_note_exceeds_creditable",
            param=param,
            conflict=True,
        )
    return _credited(line, request.amount_minor, None, currency, request.tax_minor)


def credit_lines(
    lines: Sequence[LineState],
    requested: Sequence[LineRequest] | None,
    creditable_minor: int,
    currency: str = "",
) -> list[CreditedLine]:
    """The lines a credit note takes (``requested`` None: the whole invoice), within ``creditable_minor``,
    what the invoice still has creditable (amounts with their exclusive tax); ``currency`` rounds the tax
    of taxed lines. Raises :class:`CreditNoteRuleError`."""
    by_id = {line.line_id: line for line in lines}
    if requested is None:
        return _whole(lines, creditable_minor, currency)
    if not requested:
        raise CreditNoteRuleError("Name at least one line, or leave lines out to credit the whole invoice.",
                                  code="credit_note_lines_required", param="lines")  # fmt: skip
    seen: set[str] = set()
    taken: list[CreditedLine] = []
    for index, request in enumerate(requested):
        line = by_id.get(request.line_id)
        if line is None:
            raise CreditNoteRuleError(
                f"The invoice has no line {request.line_id!r}.",
                code="invoice_line_not_found",
                param=param_path("lines", index, "line_id"),
            )
        if request.line_id in seen:
            raise CreditNoteRuleError(
                f"Line {request.line_id!r} is named twice; name each line once.",
                code="credit_note_line_repeated",
                param=param_path("lines", index, "line_id"),
            )
        seen.add(request.line_id)
        taken.append(_one(line, index, request, currency))
    total = sum(t.total_minor for t in taken)
    if total > creditable_minor:
        raise CreditNoteRuleError(
            f"The invoice has {creditable_minor} left to credit; this credit note is {total}.",
            code="credit_note_exceeds_creditable",
            param="lines",
            conflict=True,
        )
    return taken


def _fitting(line: LineState, left: int, currency: str) -> CreditedLine | None:
    """The largest credit of ``line`` whose total (with its exclusive tax) fits in ``left``: the whole
    remainder when it fits, else found by bisection (a credit's total grows with its amount)."""
    whole = _credited(line, line.remaining_minor, line.remaining_quantity, currency)
    if whole.total_minor <= left:
        return whole
    low, high = 0, min(line.remaining_minor - 1, left)  # low fits (0 does), high + 1 does not
    while low < high:
        mid = (low + high + 1) // 2
        if _credited(line, mid, None, currency).total_minor <= left:
            low = mid
        else:
            high = mid - 1
    return _credited(line, low, None, currency) if low > 0 else None


def _whole(lines: Sequence[LineState], creditable_minor: int, currency: str) -> list[CreditedLine]:
    left = creditable_minor
    taken: list[CreditedLine] = []
    for line in lines:
        if left <= 0:
            break
        if line.amount_minor <= 0 or line.remaining_minor <= 0:
            continue
        found = _fitting(line, left, currency)
        if found is None:
            break
        taken.append(found)
        left -= found.total_minor
    if not taken:
        raise CreditNoteRuleError(
            "Nothing is left to credit on this invoice.",
            code="credit_note_exceeds_creditable",
            param="lines",
            conflict=True,
        )
    return taken


def split_amount(
    total_minor: int,
    *,
    remaining_due: int,
    refundable: int,
    credit: int | None = None,
    refund: int | None = None,
    out_of_band: int | None = None,
) -> Split:
    """Where ``total_minor`` goes: first what is still due, the rest as ``credit`` / ``refund`` /
    ``out_of_band`` (given parts must add up to the post-payment part; none given: all credit)."""
    pre = min(total_minor, max(remaining_due, 0))
    post = total_minor - pre
    if post > refundable:
        raise CreditNoteRuleError(
            f"The invoice has {max(remaining_due, 0) + refundable} left to credit; this credit note is "
            f"{total_minor}.",
            code="credit_note_exceeds_creditable",
            param="lines",
            conflict=True,
        )
    parts = {
        "credit_amount_minor": credit,
        "refund_amount_minor": refund,
        "out_of_band_amount_minor": out_of_band,
    }
    for name, value in parts.items():
        if value is not None and value < 0:
            raise CreditNoteRuleError(f"{name} must not be negative.", code="amount_not_positive", param=name)
    if all(value is None for value in parts.values()):
        return Split(pre, post, 0, 0)
    given = sum(value or 0 for value in parts.values())
    if given != post:
        sent = [name for name, value in parts.items() if value is not None]
        raise CreditNoteRuleError(
            f"Of this credit note, {pre} lowers what is still due and {post} was already paid; "
            "credit_amount_minor + refund_amount_minor + out_of_band_amount_minor must be "
            f"{post}, not {given}.",
            code="credit_note_split_mismatch",
            param=sent[-1],  # a field the request sent (the last of them, when several)
        )
    return Split(pre, credit or 0, refund or 0, out_of_band or 0)


def less_by(taken: Sequence[CreditedLine], absorbed: int) -> list[LineRequest]:
    """``taken`` (what a correction's note would credit) as line requests giving back ``absorbed`` less in
    all, each line's amount and exclusive tax lowered in proportion to its part of the total (whole minor
    units by the largest remainder, ``domain.discounts.share_out``); a line's inclusive tax follows its
    amount (half-up once). Lines left with nothing are dropped.

    Example:
        >>> vat = TaxRate("txr_1", Decimal("19"))
        >>> line = CreditedLine("a", 200, None, (CreditedTax(vat, 38),))
        >>> [(r.amount_minor, r.tax_minor) for r in less_by([line], 10)]
        [(192, (('txr_1', 36),))]
    """
    from neruba.domain.discounts import share_out

    weights: list[tuple[str, int]] = []
    for index, line in enumerate(taken):
        weights.append((f"{index}", line.amount_minor))
        weights += [
            (f"{index}:{t.rate.tax_rate_id}", t.amount_minor) for t in line.tax if not t.rate.inclusive
        ]
    kept = share_out(max(sum(w for _, w in weights) - absorbed, 0), [w for w in weights if w[1] > 0])
    out: list[LineRequest] = []
    for index, line in enumerate(taken):
        amount = kept.get(f"{index}", 0)
        tax = []
        for t in line.tax:
            if t.rate.inclusive:
                part = (
                    _half_up(Decimal(t.amount_minor * amount) / line.amount_minor) if line.amount_minor else 0
                )
            else:
                part = kept.get(f"{index}:{t.rate.tax_rate_id}", 0)
            tax.append((t.rate.tax_rate_id, part))
        if amount > 0 or any(v for _, v in tax):
            out.append(
                LineRequest(line.line_id, amount_minor=amount, tax_minor=tuple(tax) if line.tax else None)
            )
    return out
