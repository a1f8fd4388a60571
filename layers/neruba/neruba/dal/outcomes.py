"""Outcome counters that stay exact when a worker is killed: each attempt's counts are one item, written once.

Items of the usage table, under ``OUT#{day}[#{shard}]`` (the shard of the attempt's batch):

- ``{minute}#{attempt}`` - the counts one worker attempt recorded, put once on condition that it is absent:
  the item is both the counts and the mark that they were added (a retry of the put adds nothing).
- ``{minute}#{attempt}#{copy}`` - one copy a killed attempt recorded and never counted, counted by the
  delivery that meets it again (once per copy, on the same condition).
- ``{minute}`` - the counters earlier versions added to (``ADD``), still read.

An attempt is ``{batch}@{its start}``; the worker stamps it on what it records (an event's ``oa``, a history
entry's ``a``), and an attempt that refuses or parks an accepted event stamps itself on it (``mv``, through
:func:`moves_by`), so a later delivery knows whose counters hold each copy (``logic.ingest.outcomes``).
Readers add every item of a minute together.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from neruba.dal.clients import client
from neruba.dal.contributions import shard_of
from neruba.dal.dynamo import is_condition_failure
from neruba.timefmt import iso, parse_ts

MINUTE = 16  # ``YYYY-MM-DDTHH:MM``
_MOVER: ContextVar[str | None] = ContextVar("neruba_outcome_mover", default=None)


def attempt_id(batch: str, started: datetime) -> str:
    """The id of one attempt at a batch (the same batch delivered again is another attempt)."""
    return f"{batch}@{iso(started)}"


def started_at(attempt: str) -> datetime:
    return parse_ts(attempt.rpartition("@")[2])


def partition(day: str, shard: int) -> str:
    return f"OUT#{day}" if shard == 0 else f"OUT#{day}#{shard}"


def _key(attempt: str, shards: int, copy_id: str | None = None) -> dict[str, Any]:
    batch, _, started = attempt.rpartition("@")
    minute = iso(parse_ts(started))[:MINUTE]
    sk = f"{minute}#{attempt}" + (f"#{copy_id}" if copy_id is not None else "")
    return {"pk": {"S": partition(minute[:10], shard_of(batch, shards))}, "sk": {"S": sk}}


def _counts(counts: Mapping[str, int]) -> dict[str, Any]:
    return {name: {"N": str(n)} for name, n in counts.items()}


def counts_put(table: str, attempt: str, shards: int, counts: Mapping[str, int]) -> dict[str, Any]:
    """The put of an attempt's counts (a ``Put`` action's body): written once."""
    return {
        "TableName": table,
        "Item": {**_key(attempt, shards), **_counts(counts)},
        "ConditionExpression": "attribute_not_exists(pk)",
    }


def put_once(put: Mapping[str, Any]) -> bool:
    """Put a counts item; False when it was there already (counted before)."""
    try:
        client("dynamodb").put_item(**put)
    except Exception as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


def committed(table: str, attempt: str, shards: int) -> bool:
    """Whether the attempt's counts item is written (one strongly consistent read)."""
    item = client("dynamodb").get_item(
        TableName=table, Key=_key(attempt, shards), ProjectionExpression="pk", ConsistentRead=True
    )
    return "Item" in item


def complete_copy(table: str, attempt: str, shards: int, copy_id: str, outcome: str) -> bool:
    """Count one copy that a killed ``attempt`` recorded, once whoever asks (False: counted already)."""
    return put_once(
        {
            "TableName": table,
            "Item": {**_key(attempt, shards, copy_id), **_counts({outcome: 1})},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    )


def minute_of_item(sk: str) -> str:
    """The minute an outcome item counts in (its sort key's first 16 characters)."""
    return sk[:MINUTE]


@contextmanager
def moves_by(attempt: str) -> Iterator[None]:
    """Within it, a refusal or park of an accepted event names ``attempt`` as the one that moved it."""
    token = _MOVER.set(attempt)
    try:
        yield
    finally:
        _MOVER.reset(token)


def moved_by_set() -> str:
    """The ``SET`` clause part stamping the mover (empty outside :func:`moves_by`)."""
    return ", mv = :mv" if _MOVER.get() else ""


def moved_by_value() -> dict[str, str]:
    mover = _MOVER.get()
    return {":mv": mover} if mover else {}
