"""Paying lines from ranked balances when some balances may pay only some lines: pure arithmetic.

:func:`allocate_ranked` is the rule behind ``domain.credits.allocate`` (docs/ledger.md, "Allocation
across lines"). Balances are taken in rank order; each one is made to pay as much as it can **without
lowering what the balances ranked before it pay**, moving earlier balances to other lines they may pay
when that frees a line for it. So:

- the total paid is the most any allocation could pay (nothing is left unused while a line it may pay
  is unpaid and could be freed);
- rank holds: a balance never keeps a remainder that could pay a line a lower-ranked balance paid;
- a balance pays first the lines that fewer balances may pay (then the lines in the order given), so
  a balance that may pay anything leaves to restricted balances the lines only they may pay.

It is a maximum flow built up balance by balance (a greedy choice on a polymatroid, which is what makes
rank-by-rank maximisation also maximise the total): each step looks for a shortest chain "this balance
pays line a, the balance that paid a moves to line b, ..., line z has room", and moves the smallest
amount along it. Integers in, integers out.

Example: A (rank 1, 3000, any line) and B (rank 2, 1500, meter lines only); lines fee 1500 (no meter)
and usage 2000 (meter). A pays the fee first (only A may pay it), then 1500 of usage; B pays the
last 500 of usage:
    >>> paid = allocate_ranked([("A", 3000), ("B", 1500)], [("fee", 1500), ("usage", 2000)],
    ...                        lambda b, line: b == "A" or line == "usage")
    >>> sorted(paid.items())
    [(('A', 'fee'), 1500), (('A', 'usage'), 1500), (('B', 'usage'), 500)]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from itertools import pairwise


def allocate_ranked(
    balances: Sequence[tuple[str, int]],
    lines: Sequence[tuple[str, int]],
    may_pay: Callable[[str, str], bool],
    limit: int | None = None,
) -> dict[tuple[str, str], int]:
    """Amounts paid as ``{(balance_id, line_id): amount}`` (positive amounts only).

    ``balances`` are (id, amount) in rank order, ``lines`` (id, amount) in invoice order (ids unique,
    amounts >= 0); ``may_pay(balance_id, line_id)`` says which balance may pay which line; ``limit``
    caps the total paid (None: no cap).
    """
    line_ids = [line_id for line_id, _ in lines]
    room = {line_id: amount for line_id, amount in lines}
    eligible = {b: [line for line in line_ids if may_pay(b, line)] for b, _ in balances}
    payers = {line: sum(1 for b, _ in balances if line in eligible[b]) for line in line_ids}
    position = {line: i for i, line in enumerate(line_ids)}
    for b in eligible:
        eligible[b].sort(key=lambda line: (payers[line], position[line]))
    paid: dict[str, dict[str, int]] = {b: {} for b, _ in balances}  # balance -> line -> amount
    paid_by: dict[str, dict[str, int]] = {line: {} for line in line_ids}  # line -> balance -> amount
    cap = limit if limit is not None else sum(room.values())
    for balance, amount in balances:
        left = amount
        while left > 0 and cap > 0:
            chain = _shortest_chain(balance, eligible, room, paid_by)
            if chain is None:
                break
            step = min(left, cap, room[chain[-1][1]])
            for (_, given_up), (payer, _) in pairwise(chain):
                step = min(step, paid_by[given_up][payer])
            _move(chain, step, room, paid, paid_by)
            left -= step
            cap -= step
    return {(b, line): v for b in paid for line, v in paid[b].items() if v > 0}


def _shortest_chain(
    start: str,
    eligible: dict[str, list[str]],
    room: dict[str, int],
    paid_by: dict[str, dict[str, int]],
) -> list[tuple[str, str]] | None:
    """Breadth-first: [(start, a), (b1, a1), ...] where start takes line a from its payer b1, who takes
    a1, ... and the last line has room; None when no chain exists."""
    came_from: dict[str, tuple[str, str | None]] = {}  # line -> (balance that reaches it, previous line)
    seen_balances = {start}
    queue: deque[tuple[str, str | None]] = deque([(start, None)])
    while queue:
        balance, via = queue.popleft()
        for line in eligible[balance]:
            if line in came_from:
                continue
            came_from[line] = (balance, via)
            if room[line] > 0:
                return _unwind(line, came_from)
            for payer, amount in paid_by[line].items():
                if amount > 0 and payer not in seen_balances:
                    seen_balances.add(payer)
                    queue.append((payer, line))
    return None


def _unwind(line: str, came_from: dict[str, tuple[str, str | None]]) -> list[tuple[str, str]]:
    chain: list[tuple[str, str]] = []
    current: str | None = line
    while current is not None:
        balance, previous = came_from[current]
        chain.append((balance, current))
        current = previous
    chain.reverse()
    return chain


def _move(
    chain: list[tuple[str, str]],
    step: int,
    room: dict[str, int],
    paid: dict[str, dict[str, int]],
    paid_by: dict[str, dict[str, int]],
) -> None:
    """Each balance of the chain pays ``step`` more of its line; each later one gives up ``step`` of the
    line before; the last line's room shrinks by ``step``."""
    for i, (balance, line) in enumerate(chain):
        paid[balance][line] = paid[balance].get(line, 0) + step
        paid_by[line][balance] = paid_by[line].get(balance, 0) + step
        if i > 0:
            given_up = chain[i - 1][1]
            paid[balance][given_up] -= step
            paid_by[given_up][balance] -= step
    room[chain[-1][1]] -= step
