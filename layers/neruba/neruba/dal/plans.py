"""Plans (immutable versions) and subscriptions in the catalog table.

Items: ``PLN#{code}`` / ``#`` (the plan: name, latest version), ``PLN#{code}`` / ``V#{000001}`` (one
immutable version), ``SUB#{id}`` / ``#`` (a subscription, listed per customer through the by-kind index
with ``list_key = {customer}#{id}``), ``SUBG#{customer}`` / ``#`` (the customer's subscription guard:
``rev`` and the ``ids`` of all its subscriptions). Subscription writes are conditional on the revision
read, so two concurrent changes cannot overwrite each other; a creation or plan change is also conditional
on the guard's ``rev``, so two writes checked against the same set of subscriptions cannot both commit.
The guard lists ids on the base table because the by-kind index is only eventually consistent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from neruba.dal.catalog import CatalogConflictError, CatalogNotFoundError, CatalogRepository
from neruba.dal.dynamo import TransactionCancelledError, batch_get, partition_items, to_item
from neruba.dal.transaction import Cancelled, Transaction
from neruba.domain.phases import Timeline
from neruba.timefmt import iso

Actions = Sequence[dict[str, Any]]


def _version_sk(version: int) -> str:
    return f"V#{version:06d}"


def _guard_key(customer_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"SUBG#{customer_id}"}, "sk": {"S": "#"}}


@dataclass(frozen=True, slots=True)
class SubscriptionGuard:
    """A customer's subscription ids as read (``rev`` 0: no guard item written yet)."""

    customer_id: str
    rev: int
    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PlanVersion:
    """One published version of a plan: the fields logic decides on, and ``document`` (the version as
    published), which the API answers and rating reads the charges from."""

    code: str
    version: int
    currency: str
    interval: str
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Plan:
    """A plan: its latest version, the numbers of all its versions, and ``document`` (the latest
    version's document with ``versions``), which the API answers."""

    latest: PlanVersion
    versions: tuple[int, ...]
    document: dict[str, Any]


def version_record(doc: dict[str, Any]) -> PlanVersion:
    """The plan version whose stored document is ``doc``."""
    return PlanVersion(
        code=str(doc["code"]),
        version=int(doc["version"]),
        currency=str(doc.get("currency")),
        interval=str(doc.get("interval")),
        document=doc,
    )


@dataclass(frozen=True, slots=True)
class Subscription:
    """A stored subscription: the fields logic decides on, ``timeline`` (what the phase, fee and overlap
    rules of ``domain.phases`` read), and ``document`` (the stored document, without the ``revision`` it
    is stored at), which the API answers and a change starts from."""

    id: str
    customer_id: str
    status: str
    currency: str
    trial_end: str | None
    revision: int
    timeline: Timeline
    document: dict[str, Any]


def subscription_record(item: dict[str, Any]) -> Subscription:
    """The subscription in catalog item ``item``."""
    doc: dict[str, Any] = json.loads(item["doc"])
    return Subscription(
        id=str(doc["id"]),
        customer_id=str(doc["customer_id"]),
        status=str(doc.get("status")),
        currency=str(doc.get("currency")),
        trial_end=doc.get("trial_end"),
        revision=int(item["rev"]),
        timeline=Timeline.of(doc),
        document=doc,
    )


class PlansRepository(CatalogRepository):
    """Publish and read plan versions; create, read and update subscriptions."""

    def publish(
        self, code: str, body: dict[str, Any], extra: Callable[[dict[str, Any]], Actions] | None = None
    ) -> int:
        """Store ``body`` as the next version of plan ``code`` (version 1 creates the plan).

        ``extra(version_doc)`` gives actions (an audit record) committed in the same transaction.
        """
        for _attempt in range(5):
            header = self._get({"pk": {"S": f"PLN#{code}"}, "sk": {"S": "#"}})
            latest = int(header["latest"]) if header else 0
            version = latest + 1
            now = iso(datetime.now(UTC))
            doc = {**body, "code": code, "version": version, "created_at": now}
            header_update: dict[str, Any] = {
                "TableName": self.table_name,
                "Key": {"pk": {"S": f"PLN#{code}"}, "sk": {"S": "#"}},
                "UpdateExpression": "SET latest = :v, kind = :kind, list_key = :code, doc = :doc",
                "ExpressionAttributeValues": to_item(
                    {
                        ":v": version,
                        ":kind": "plan",
                        ":code": code,
                        ":doc": json.dumps(doc, sort_keys=True),
                        ":prev": latest,
                    }
                ),
                "ConditionExpression": "attribute_not_exists(pk)" if latest == 0 else "latest = :prev",
            }
            if latest == 0:
                header_update["ExpressionAttributeValues"].pop(":prev")
            try:
                Transaction(
                    [
                        {
                            "Put": {
                                "TableName": self.table_name,
                                "Item": to_item(
                                    {
                                        "pk": f"PLN#{code}",
                                        "sk": _version_sk(version),
                                        "kind": "plan_version",
                                        "doc": json.dumps(doc, sort_keys=True),
                                    }
                                ),
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                        {"Update": header_update},
                        *(extra(doc) if extra else ()),
                    ]
                ).commit()
                return version
            except TransactionCancelledError:
                continue  # the header moved meanwhile: read it again
        raise CatalogConflictError(f"plan {code!r} kept changing; try again")

    def plan(self, code: str) -> Plan:
        """The plan: its latest version and the list of version numbers."""
        items = self._query_pk(f"PLN#{code}")
        header = next((i for i in items if i["sk"] == "#"), None)
        if header is None:
            raise CatalogNotFoundError(f"no plan {code!r}")
        latest: dict[str, Any] = json.loads(header["doc"])
        versions = [int(str(i["sk"])[2:]) for i in items if str(i["sk"]).startswith("V#")]
        return Plan(version_record(latest), tuple(versions), {**latest, "versions": versions})

    def version(self, code: str, version: int | None = None) -> PlanVersion:
        """One version (the latest when ``version`` is None)."""
        if version is None:
            return self.plan(code).latest
        item = self._get({"pk": {"S": f"PLN#{code}"}, "sk": {"S": _version_sk(version)}})
        if item is None:
            raise CatalogNotFoundError(f"no version {version} of plan {code!r}")
        return version_record(json.loads(item["doc"]))

    def subscription_guard(self, customer_id: str) -> SubscriptionGuard:
        """The customer's guard, read consistently. Without one yet (subscriptions made before guards
        existed), the ids come from the customer's listing; the first guarded write then stores them."""
        item = self._get(_guard_key(customer_id))
        if item is None:
            ids = tuple(s.id for s in self.customer_subscriptions(customer_id))
            return SubscriptionGuard(customer_id, 0, ids)
        return SubscriptionGuard(customer_id, int(item["rev"]), tuple(str(i) for i in item.get("ids") or ()))

    def subscriptions_by_id(self, ids: Sequence[str]) -> list[Subscription]:
        """The subscriptions ``ids`` (consistent reads, 100 keys per request), in no particular order."""
        keys = [{"pk": {"S": f"SUB#{i}"}, "sk": {"S": "#"}} for i in ids]
        return [subscription_record(item) for item in batch_get(self.table_name, keys)]

    def _guard_item(self, guard: SubscriptionGuard, ids: Sequence[str]) -> dict[str, Any]:
        """Move the guard to ``rev + 1`` with ``ids`` (condition: it is still at the ``rev`` read)."""
        values: dict[str, Any] = {":next": guard.rev + 1, ":ids": list(ids)}
        if guard.rev:
            values[":rev"] = guard.rev
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": _guard_key(guard.customer_id),
                "UpdateExpression": "SET rev = :next, ids = :ids",
                "ConditionExpression": "rev = :rev" if guard.rev else "attribute_not_exists(pk)",
                "ExpressionAttributeValues": to_item(values),
            }
        }

    def create_subscription(
        self, doc: dict[str, Any], guard: SubscriptionGuard | None = None, extra: Actions = ()
    ) -> dict[str, Any]:
        """Create a subscription, its id added to the customer's guard, with ``extra`` actions, in one
        transaction. ``guard`` is the one the caller checked (read here when None); raises
        TransactionCancelledError when the id exists or the guard moved."""
        guard = guard or self.subscription_guard(str(doc["customer_id"]))
        item = {
            "pk": f"SUB#{doc['id']}",
            "sk": "#",
            "kind": "subscription",
            "list_key": f"{doc['customer_id']}#{doc['id']}",
            "rev": 1,
            "doc": json.dumps(doc, sort_keys=True),
        }
        put = {
            "TableName": self.table_name,
            "Item": to_item(item),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        ids = [*guard.ids, str(doc["id"])]
        Transaction([{"Put": put}, self._guard_item(guard, ids), *extra]).commit()
        return {**doc, "revision": 1}

    def subscription(self, subscription_id: str) -> Subscription:
        item = self._get({"pk": {"S": f"SUB#{subscription_id}"}, "sk": {"S": "#"}})
        if item is None:
            raise CatalogNotFoundError(f"no subscription {subscription_id!r}")
        return subscription_record(item)

    def save_subscription(
        self, doc: dict[str, Any], guard: SubscriptionGuard | None = None, extra: Actions = ()
    ) -> dict[str, Any]:
        """Write a changed subscription with ``extra`` actions in one transaction; with ``guard``, also
        conditional on the customer's guard being as read (a plan change checked against it).

        Raises CatalogConflictError if the subscription changed since it was read, and
        TransactionCancelledError if something else did (the guard, an extra action's condition).
        """
        revision = int(doc["revision"])
        body = {k: v for k, v in doc.items() if k != "revision"}
        update = {
            "TableName": self.table_name,
            "Key": {"pk": {"S": f"SUB#{doc['id']}"}, "sk": {"S": "#"}},
            "UpdateExpression": "SET doc = :doc, rev = :next",
            "ConditionExpression": "rev = :rev",
            "ExpressionAttributeValues": to_item(
                {":doc": json.dumps(body, sort_keys=True), ":next": revision + 1, ":rev": revision}
            ),
        }
        guarded = [self._guard_item(guard, guard.ids)] if guard else []
        try:
            Transaction().add({"Update": update}, name="subscription").extend(guarded).extend(extra).commit()
        except Cancelled as exc:
            if exc.failed("subscription"):
                raise CatalogConflictError(
                    "the subscription changed meanwhile; read it and try again"
                ) from exc
            raise
        return {**body, "revision": revision + 1}

    def customer_subscriptions(self, customer_id: str) -> list[Subscription]:
        items, cursor = self._list_items("subscription", 100, None, prefix=f"{customer_id}#")
        while cursor:
            more, cursor = self._list_items("subscription", 100, cursor, prefix=f"{customer_id}#")
            items += more
        return [subscription_record(item) for item in items]

    def _query_pk(self, pk: str) -> list[dict[str, Any]]:
        return list(partition_items(self.table_name, pk))
