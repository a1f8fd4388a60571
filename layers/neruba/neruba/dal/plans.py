"""Plans (immutable versions) and subscriptions in the catalog table.

Items: ``PLN#{code}`` / ``#`` (the plan: name, latest version), ``PLN#{code}`` / ``V#{000001}`` (one
immutable version), ``SUB#{id}`` / ``#`` (a subscription, listed per customer through the by-kind index
with ``list_key = {customer}#{id}``). Subscription writes are conditional on the revision read, so two
concurrent changes cannot overwrite each other.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from neruba.dal.catalog import CatalogConflictError, CatalogNotFoundError, CatalogRepository
from neruba.dal.clients import client
from neruba.dal.dynamo import from_item, is_condition_failure, to_item


def _version_sk(version: int) -> str:
    return f"V#{version:06d}"


class PlansRepository(CatalogRepository):
    """Publish and read plan versions; create, read and update subscriptions."""

    def publish(self, code: str, body: dict[str, Any]) -> int:
        """Store ``body`` as the next version of plan ``code`` (version 1 creates the plan)."""
        for _attempt in range(5):
            header = self._get({"pk": {"S": f"PLN#{code}"}, "sk": {"S": "#"}})
            latest = int(header["latest"]) if header else 0
            version = latest + 1
            now = datetime.now(UTC).isoformat()
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
                client("dynamodb").transact_write_items(
                    TransactItems=[
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
                    ]
                )
                return version
            except Exception as exc:
                if not getattr(exc, "response", {}).get("CancellationReasons"):
                    raise
        raise CatalogConflictError(f"plan {code!r} kept changing; try again")

    def plan(self, code: str) -> dict[str, Any]:
        """The latest version's document plus the list of version numbers."""
        items = self._query_pk(f"PLN#{code}")
        header = next((i for i in items if i["sk"] == "#"), None)
        if header is None:
            raise CatalogNotFoundError(f"no plan {code!r}")
        doc: dict[str, Any] = json.loads(header["doc"])
        doc["versions"] = [int(str(i["sk"])[2:]) for i in items if str(i["sk"]).startswith("V#")]
        return doc

    def version(self, code: str, version: int | None = None) -> dict[str, Any]:
        """One version's document (the latest when ``version`` is None)."""
        if version is None:
            return {k: v for k, v in self.plan(code).items() if k != "versions"}
        item = self._get({"pk": {"S": f"PLN#{code}"}, "sk": {"S": _version_sk(version)}})
        if item is None:
            raise CatalogNotFoundError(f"no version {version} of plan {code!r}")
        return dict(json.loads(item["doc"]))

    def create_subscription(self, doc: dict[str, Any]) -> dict[str, Any]:
        item = {
            "pk": f"SUB#{doc['id']}",
            "sk": "#",
            "kind": "subscription",
            "list_key": f"{doc['customer_id']}#{doc['id']}",
            "rev": 1,
            "doc": json.dumps(doc, sort_keys=True),
        }
        client("dynamodb").put_item(
            TableName=self.table_name, Item=to_item(item), ConditionExpression="attribute_not_exists(pk)"
        )
        return {**doc, "revision": 1}

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        item = self._get({"pk": {"S": f"SUB#{subscription_id}"}, "sk": {"S": "#"}})
        if item is None:
            raise CatalogNotFoundError(f"no subscription {subscription_id!r}")
        return {**json.loads(item["doc"]), "revision": int(item["rev"])}

    def save_subscription(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Write a changed subscription; raises CatalogConflictError if it changed since it was read."""
        revision = int(doc["revision"])
        body = {k: v for k, v in doc.items() if k != "revision"}
        try:
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key={"pk": {"S": f"SUB#{doc['id']}"}, "sk": {"S": "#"}},
                UpdateExpression="SET doc = :doc, rev = :next",
                ConditionExpression="rev = :rev",
                ExpressionAttributeValues=to_item(
                    {":doc": json.dumps(body, sort_keys=True), ":next": revision + 1, ":rev": revision}
                ),
            )
        except Exception as exc:
            if is_condition_failure(exc):
                raise CatalogConflictError(
                    "the subscription changed meanwhile; read it and try again"
                ) from exc
            raise
        return {**body, "revision": revision + 1}

    def customer_subscriptions(self, customer_id: str) -> list[dict[str, Any]]:
        docs, cursor = self.list_docs("subscription", 100, None, prefix=f"{customer_id}#")
        while cursor:
            more, cursor = self.list_docs("subscription", 100, cursor, prefix=f"{customer_id}#")
            docs += more
        return docs

    def _query_pk(self, pk: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        paginator = client("dynamodb").get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
            ConsistentRead=True,
        ):
            items.extend(from_item(i) for i in page.get("Items", []))
        return items
