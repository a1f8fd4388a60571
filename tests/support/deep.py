"""Deep cases: the part of a fault matrix ``make test`` leaves to ``make deep`` (docs/testing.md, "Deep
cases").

A matrix of kill points (or shapes times kill points) keeps in ``make test`` a covering set of rows, in which
every value of every axis occurs at least once, and marks the other combinations ``deep``, which ``make deep``
runs (``pytest --deep only``). Nothing is weakened: each combination asserts the same in either run.

A scaled test (marker ``scaled``: a property run, a storm of events, the API fuzzer) runs in both, at the
size ``size`` gives: small in ``make test``, full in ``make deep``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from typing import Any

import pytest

DEEP = pytest.mark.deep


def _row(value: Any) -> tuple[Any, ...]:
    return value if isinstance(value, tuple) else (value,)


def covering(*axes: Sequence[Any]) -> list[Any]:
    """Every combination of ``axes`` as ``pytest.param`` (a tuple value of an axis spreads over several
    arguments): the i-th value of each axis together (cycling the shorter axes) runs in ``make test``, every
    other combination is ``deep``.

    Example:
        >>> [p.marks for p in covering(["a", "b"], [1, 2])]  # doctest: +SKIP
        [(), (deep,), (deep,), ()]
    """
    longest = max(len(axis) for axis in axes)
    kept = {tuple(axis[i % len(axis)] for axis in axes) for i in range(longest)}
    return [
        pytest.param(
            *itertools.chain.from_iterable(_row(v) for v in combo), marks=() if combo in kept else DEEP
        )
        for combo in itertools.product(*axes)
    ]


def every(values: Sequence[Any], step: int) -> list[Any]:
    """``values`` as ``pytest.param``: the first, the last and every ``step``-th run in ``make test``, the
    rest is ``deep``."""
    last = len(values) - 1
    return [
        pytest.param(*_row(v), marks=() if i in (0, last) or i % step == 0 else DEEP)
        for i, v in enumerate(values)
    ]


def size(small: int, full: int) -> int:
    """``full`` when this run takes the deep cases (``make deep``: ``--deep only``, or ``all``), else
    ``small``. The test using it carries the marker ``scaled``, so that ``make deep`` runs it."""
    return full if os.environ.get("NERUBA_DEEP", "skip") != "skip" else small
