"""Leases on DynamoDB lock items, with fencing tokens.

Item ``LOCK#{name}`` / ``#`` in the billing table: ``owner``, ``lease_until`` (fixed-width ISO UTC, so
strings compare as times) and ``token``, a number that grows by one at every acquisition.

- :meth:`LockRepository.acquire` is one conditional UpdateItem: it succeeds only if the item does not
  exist or its lease has expired, and it adds 1 to ``token``.
- :meth:`LockRepository.renew` extends the lease only while the token is still ours.
- :meth:`LockRepository.fence` is a TransactWriteItems ``ConditionCheck`` (``token = ours``): every write
  that depends on holding the lock is put in a transaction with it, so a holder whose lease expired and
  was taken over (a newer token exists) cannot commit anything.

Times are stored in :func:`neruba.timefmt.ts` format.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from neruba.dal.clients import client
from neruba.dal.dynamo import from_item, is_condition_failure, to_item
from neruba.timefmt import ts


class LockLostError(Exception):
    """The lease expired and another holder took the lock (a newer fencing token exists)."""


@dataclass(frozen=True, slots=True)
class Lease:
    """A held lease: who holds it, until when, and its fencing token."""

    name: str
    owner: str
    token: int
    expires_at: datetime


def _key(name: str) -> dict[str, Any]:
    return {"pk": {"S": f"LOCK#{name}"}, "sk": {"S": "#"}}


class LockRepository:
    """Acquire, renew, release and fence leases on lock items of one table."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def acquire(self, name: str, owner: str, lease: timedelta, now: datetime) -> Lease | None:
        """Take the lock if it is free or its lease expired; None while another lease is live.

        Example:
            >>> LockRepository("t").acquire("billing", "run-1", timedelta(minutes=5), now)  # doctest: +SKIP
            Lease(name='billing', owner='run-1', token=7, expires_at=...)
        """
        until = now + lease
        try:
            response = client("dynamodb").update_item(
                TableName=self.table_name,
                Key=_key(name),
                UpdateExpression="SET #o = :o, lease_until = :until, acquired_at = :now ADD #t :one",
                ConditionExpression="attribute_not_exists(pk) OR lease_until <= :now",
                ExpressionAttributeNames={"#o": "owner", "#t": "token"},
                ExpressionAttributeValues=to_item(
                    {":o": owner, ":until": ts(until), ":now": ts(now), ":one": 1}
                ),
                ReturnValues="ALL_NEW",
            )
        except Exception as exc:
            if is_condition_failure(exc):
                return None
            raise
        return Lease(name, owner, int(response["Attributes"]["token"]["N"]), until)

    def renew(self, held: Lease, lease: timedelta, now: datetime) -> Lease:
        """Extend a live lease; raises LockLostError if a newer token exists or the lease ran out."""
        until = now + lease
        try:
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key=_key(held.name),
                UpdateExpression="SET lease_until = :until",
                ConditionExpression="#t = :t AND #o = :o AND lease_until > :now",
                ExpressionAttributeNames={"#o": "owner", "#t": "token"},
                ExpressionAttributeValues=to_item(
                    {":o": held.owner, ":t": held.token, ":until": ts(until), ":now": ts(now)}
                ),
            )
        except Exception as exc:
            if is_condition_failure(exc):
                raise LockLostError(f"lock {held.name!r} token {held.token} is no longer held") from exc
            raise
        return Lease(held.name, held.owner, held.token, until)

    def release(self, held: Lease) -> None:
        """End a lease early (only if it is still ours); the token stays, so it keeps growing."""
        try:
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key=_key(held.name),
                UpdateExpression="SET lease_until = :zero",
                ConditionExpression="#t = :t",
                ExpressionAttributeNames={"#t": "token"},
                ExpressionAttributeValues=to_item(
                    {":t": held.token, ":zero": ts(datetime(1970, 1, 1, tzinfo=UTC))}
                ),
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise

    def fence(self, held: Lease) -> dict[str, Any]:
        """A ConditionCheck action for TransactWriteItems: the lock's token is still ``held.token``."""
        return {
            "ConditionCheck": {
                "TableName": self.table_name,
                "Key": _key(held.name),
                "ConditionExpression": "#t = :t",
                "ExpressionAttributeNames": {"#t": "token"},
                "ExpressionAttributeValues": to_item({":t": held.token}),
            }
        }

    def current(self, name: str) -> dict[str, Any] | None:
        """The lock item as stored (owner, lease_until, token), or None."""
        response = client("dynamodb").get_item(TableName=self.table_name, Key=_key(name), ConsistentRead=True)
        return from_item(response["Item"]) if "Item" in response else None
