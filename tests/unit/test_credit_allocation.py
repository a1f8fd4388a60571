"""How credit grants pay invoice lines: the most credit applied, in the grants' order of use across lines.

The maximum is checked against an independent formula (a minimum cut): with grants G and lines L, the
most the grants can pay is min over every subset S of G of (the remainders of the grants outside S +
the amounts of the lines some grant of S may pay), and never more than the limit.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import combinations

from hypothesis import given, settings
from hypothesis import strategies as st

from neruba.domain.credits import CreditApplication, CreditGrant, Line, allocate

T = datetime(2026, 3, 1, tzinfo=UTC)
METERS = ("api_calls", "tokens", "storage")


def _grant(
    gid: str,
    remaining: int,
    priority: int = 0,
    meters: tuple[str, ...] | None = None,
    expires_at: datetime | None = None,
) -> CreditGrant:
    start = T - timedelta(days=10)
    return CreditGrant(
        gid, "acme", "purchased", max(remaining, 1), remaining, "USD", priority, start, expires_at, meters
    )


def _most_payable(grants: list[CreditGrant], lines: list[Line], limit: int | None) -> int:
    best = sum(max(0, line.amount_minor) for line in lines) if limit is None else limit
    for size in range(len(grants) + 1):
        for chosen in combinations(grants, size):
            outside = sum(g.remaining_minor for g in grants if g not in chosen)
            reachable = sum(
                max(0, line.amount_minor) for line in lines if any(g.covers(line.meter_code) for g in chosen)
            )
            best = min(best, outside + reachable)
    return best


grant_strategy = st.builds(
    lambda i, remaining, priority, meters, expiry: _grant(
        f"cg_{i}",
        remaining,
        priority,
        meters,
        expires_at=(T + timedelta(days=expiry)) if expiry is not None else None,
    ),
    st.integers(0, 10**6),
    st.integers(0, 3000),
    st.integers(0, 3),
    st.one_of(st.none(), st.lists(st.sampled_from(METERS), min_size=1, max_size=2, unique=True).map(tuple)),
    st.one_of(st.none(), st.integers(-5, 30)),  # 0 and below: not usable at T
)
line_strategy = st.builds(
    Line,
    st.sampled_from([f"l{i}" for i in range(6)]),
    st.one_of(st.none(), st.sampled_from(METERS)),
    st.integers(-500, 3000),
)


def _unique(grants: list[CreditGrant]) -> list[CreditGrant]:
    return list({g.grant_id: g for g in grants}.values())


def _unique_lines(lines: list[Line]) -> list[Line]:
    return list({line.line_id: line for line in lines}.values())


@settings(max_examples=400, deadline=None)
@given(
    st.lists(grant_strategy, max_size=5).map(_unique),
    st.lists(line_strategy, max_size=6).map(_unique_lines),
    st.one_of(st.none(), st.integers(0, 8000)),
)
def test_allocation_is_maximal_bounded_and_keeps_precedence(
    grants: list[CreditGrant], lines: list[Line], limit: int | None
) -> None:
    # WHEN the grants are allocated to the lines
    apps = allocate(grants, lines, T, limit_minor=limit)

    # THEN amounts are positive integers within each line, each grant's remainder and the limit,
    # on lines the grant may pay, from grants usable now
    by_id = {g.grant_id: g for g in grants}
    amounts = {line.line_id: line.amount_minor for line in lines}
    meters = {line.line_id: line.meter_code for line in lines}
    per_line: dict[str, int] = {}
    per_grant: dict[str, int] = {}
    for app in apps:
        assert type(app.amount_minor) is int and app.amount_minor > 0
        grant = by_id[app.grant_id]
        assert grant.usable_at(T) and grant.covers(meters[app.line_id]) and app.kind == grant.kind
        per_line[app.line_id] = per_line.get(app.line_id, 0) + app.amount_minor
        per_grant[app.grant_id] = per_grant.get(app.grant_id, 0) + app.amount_minor
    assert all(per_line[i] <= amounts[i] for i in per_line)
    assert all(per_grant[g] <= by_id[g].remaining_minor for g in per_grant)
    total = sum(per_line.values())
    assert limit is None or total <= limit

    # AND the total is the most any allocation could apply
    usable = [g for g in grants if g.usable_at(T)]
    assert total == _most_payable(usable, lines, limit)

    # AND precedence holds: a grant earlier in the order of use never keeps credit that could have paid
    # a line a later grant paid
    ordered = sorted(usable, key=CreditGrant.sort_key)
    for i, earlier in enumerate(ordered):
        if earlier.remaining_minor - per_grant.get(earlier.grant_id, 0) == 0:
            continue
        for later in ordered[i + 1 :]:
            taken = {a.line_id for a in apps if a.grant_id == later.grant_id}
            assert not any(earlier.covers(meters[line_id]) for line_id in taken), (earlier, later)


def test_an_earlier_unrestricted_grant_leaves_the_metered_line_to_a_restricted_one() -> None:
    # GIVEN a purchased grant first in the order of use (priority 0, 3000, any line) and a promotional
    # grant restricted to api_calls (priority 1, 1500); usage 2000 on api_calls and a fixed fee of 1500
    purchased = _grant("cg_purchased", 3000, 0)
    promo = _grant("cg_promo", 1500, 1, ("api_calls",))
    lines = [Line("usage", "api_calls", 2000), Line("fee", None, 1500)]

    # WHEN allocated
    apps = allocate([promo, purchased], lines, T)

    # THEN the purchased grant pays the fee (which only it may pay) and 1500 of usage; the restricted
    # grant pays the last 500 of usage: the whole 3500 is paid, not 3000 with 1500 of credit left unused
    assert apps == [
        CreditApplication("cg_purchased", "usage", 1500, "purchased"),
        CreditApplication("cg_purchased", "fee", 1500, "purchased"),
        CreditApplication("cg_promo", "usage", 500, "purchased"),
    ]


def test_a_later_grant_moves_earlier_ones_along_a_chain() -> None:
    # GIVEN A (any line) fills line x, B (tokens or api_calls) fills y; C may pay only x
    a = _grant("cg_a", 1000, 0)
    b = _grant("cg_b", 1000, 1, ("tokens", "api_calls"))
    c = _grant("cg_c", 1000, 2, ("api_calls",))
    lines = [Line("x", "api_calls", 1000), Line("y", "tokens", 1000), Line("z", None, 1000)]

    # WHEN allocated
    apps = allocate([a, b, c], lines, T)

    # THEN A pays z (only A may), B pays y, C pays x: every line is paid
    assert sorted((x.grant_id, x.line_id, x.amount_minor) for x in apps) == [
        ("cg_a", "z", 1000),
        ("cg_b", "y", 1000),
        ("cg_c", "x", 1000),
    ]


def test_the_limit_caps_the_total_and_precedence_decides_who_pays() -> None:
    # GIVEN two unrestricted grants and 1000 of lines, of which only 600 may be paid with credit
    first, second = _grant("cg_1", 500, 0), _grant("cg_2", 500, 1)

    # WHEN allocated under the limit
    apps = allocate([second, first], [Line("a", None, 1000)], T, limit_minor=600)

    # THEN the first grant pays all it has, the second the rest of the limit
    assert [(x.grant_id, x.amount_minor) for x in apps] == [("cg_1", 500), ("cg_2", 100)]
