"""API keys in the keys table: one item per key, keyed by its public id, holding only the key's hash.

Example:
    >>> repo = KeysRepository("neruba-keys")  # doctest: +SKIP
    >>> plaintext, key = repo.create(frozenset({"read"}), name="dashboard")  # doctest: +SKIP
    >>> repo.authenticate(plaintext).scopes  # doctest: +SKIP
    frozenset({'read'})
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from neruba.dal.clients import client
from neruba.dal.dynamo import from_item, is_condition_failure, query_items, to_item
from neruba.security.apikeys import (
    MalformedKeyError,
    Scope,
    display_prefix,
    new_key,
    parse_key_id,
    parse_scopes,
    verify,
)
from neruba.timefmt import iso, parse_ts


class KeyNotFoundError(LookupError):
    """No key with that id."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key (never the plaintext)."""

    key_id: str
    name: str
    scopes: frozenset[Scope]
    created_at: str
    revoked_at: str | None = None
    rotated_to: str | None = None

    @property
    def prefix(self) -> str:
        return display_prefix(self.key_id)

    @property
    def active(self) -> bool:
        """Not revoked, or revoked at a time still ahead (the overlap a rotation gives the old key)."""
        return self.revoked_at is None or parse_ts(self.revoked_at) > datetime.now(UTC)


def _now() -> str:
    return iso(datetime.now(UTC), seconds=True)


class KeysRepository:
    """Create, find, list, revoke and rotate API keys."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def create(self, scopes: frozenset[Scope], *, name: str = "") -> tuple[str, ApiKey]:
        """Store a new key; returns the plaintext (shown once) and the stored record."""
        if not scopes:
            raise ValueError("a key needs at least one scope")
        plaintext, key_id, digest = new_key()
        key = ApiKey(key_id=key_id, name=name, scopes=scopes, created_at=_now())
        item = {
            "pk": f"KEY#{key_id}",
            "key_id": key_id,
            "name": name,
            "scopes": " ".join(sorted(scopes)),
            "hash": digest,
            "created_at": key.created_at,
        }
        client("dynamodb").put_item(
            TableName=self.table_name, Item=to_item(item), ConditionExpression="attribute_not_exists(pk)"
        )
        return plaintext, key

    def get(self, key_id: str) -> tuple[ApiKey, str]:
        """The record and stored hash of one key."""
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key={"pk": {"S": f"KEY#{key_id}"}}, ConsistentRead=True
        )
        if "Item" not in response:
            raise KeyNotFoundError(key_id)
        values = from_item(response["Item"])
        return _to_key(values), str(values["hash"])

    def authenticate(self, plaintext: str) -> ApiKey | None:
        """The active key matching ``plaintext``, or None for anything unknown, malformed or revoked."""
        try:
            key, digest = self.get(parse_key_id(plaintext))
        except (MalformedKeyError, KeyNotFoundError):
            return None
        if not key.active or not verify(plaintext, digest):
            return None
        return key

    def list(self) -> list[ApiKey]:
        """Every key, active or revoked, oldest first."""
        keys = [_to_key(item) for item in query_items({"TableName": self.table_name}, scan=True)]
        return sorted(keys, key=lambda k: k.created_at)

    def revoke(self, key_id: str, *, rotated_to: str | None = None, at: datetime | None = None) -> ApiKey:
        """Mark a key revoked from ``at`` (default now) on. Idempotent: a key already revoked keeps its
        time, unless ``at`` brings it forward (revoking now a key that a rotation left working)."""
        when = iso(at or datetime.now(UTC), seconds=True)
        try:
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key={"pk": {"S": f"KEY#{key_id}"}},
                UpdateExpression="SET revoked_at = :now" + (", rotated_to = :to" if rotated_to else ""),
                ConditionExpression=(
                    "attribute_exists(pk) AND (attribute_not_exists(revoked_at) OR revoked_at > :now)"
                ),
                ExpressionAttributeValues=to_item({":now": when, ":to": rotated_to}),
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise
            self.get(key_id)  # KeyNotFoundError when there is no such key; else it stays revoked earlier
        return self.get(key_id)[0]

    def rotate(self, key_id: str, *, old_works_until: datetime | None = None) -> tuple[str, ApiKey]:
        """Create a key with the same scopes and name; the old one works until ``old_works_until``
        (default: it stops now), so clients can move to the new key in between. A key rotates once: a
        second rotation (or two at once) is refused and leaves no second successor."""
        old, _ = self.get(key_id)
        if not old.active:
            raise ValueError(f"key {key_id} is already revoked")
        if old.rotated_to:
            raise ValueError(f"key {key_id} was already rotated to {old.rotated_to}; rotate that key instead")
        plaintext, new = self.create(old.scopes, name=old.name)
        when = iso(old_works_until or datetime.now(UTC), seconds=True)
        try:
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key={"pk": {"S": f"KEY#{key_id}"}},
                UpdateExpression="SET revoked_at = :at, rotated_to = :to",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(rotated_to)"
                " AND (attribute_not_exists(revoked_at) OR revoked_at > :now)",
                ExpressionAttributeValues=to_item({":at": when, ":to": new.key_id, ":now": _now()}),
            )
        except Exception as exc:
            self.revoke(new.key_id)  # the successor of a rotation that did not happen never works
            if is_condition_failure(exc):
                raise ValueError(f"key {key_id} was rotated or revoked meanwhile") from exc
            raise
        return plaintext, new


def _to_key(values: dict[str, Any]) -> ApiKey:
    return ApiKey(
        key_id=str(values["key_id"]),
        name=str(values.get("name", "")),
        scopes=parse_scopes(str(values.get("scopes", ""))),
        created_at=str(values["created_at"]),
        revoked_at=values.get("revoked_at"),
        rotated_to=values.get("rotated_to"),
    )
