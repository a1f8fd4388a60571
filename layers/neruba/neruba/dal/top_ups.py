"""Auto top-up rules and requests in the ledger table (items named in ``neruba.dal.ledger``)."""

from __future__ import annotations

import json
from typing import Any

from neruba.dal.clients import client
from neruba.dal.dynamo import from_item, is_cancellation, is_condition_failure, to_item
from neruba.dal.transaction import Transaction
from neruba.domain.credits import AutoTopUpRule, TopUpRequest
from neruba.timefmt import parse_ts, ts


def _rule_key(customer_id: str, currency: str) -> dict[str, Any]:
    return to_item({"pk": f"CUS#{customer_id}", "sk": f"TOPUP#{currency}"})


class TopUpRepository:
    """Auto top-up rules (one per customer and currency) and the requests they raised."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def rule(self, customer_id: str, currency: str) -> AutoTopUpRule | None:
        response = client("dynamodb").get_item(
            TableName=self.table_name, Key=_rule_key(customer_id, currency), ConsistentRead=True
        )
        if "Item" not in response:
            return None
        v = from_item(response["Item"])
        return AutoTopUpRule(
            customer_id=customer_id,
            currency=currency,
            threshold_minor=int(v["threshold_minor"]),
            amount_minor=int(v["amount_minor"]),
            enabled=bool(v["enabled"]),
            armed=bool(v["armed"]),
            crossings=int(v["crossings"]),
        )

    def rules(self, customer_id: str) -> list[AutoTopUpRule]:
        response = client("dynamodb").query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
            ExpressionAttributeValues=to_item({":p": f"CUS#{customer_id}", ":s": "TOPUP#"}),
            ConsistentRead=True,
        )
        found = [self.rule(customer_id, from_item(i)["sk"].split("#", 1)[1]) for i in response["Items"]]
        return [r for r in found if r is not None]

    def rule_item(self, rule: AutoTopUpRule) -> dict[str, Any]:
        """Put the rule (a settings change re-arms it and starts a new crossing number, so the next
        crossing raises a new request)."""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": _rule_key(rule.customer_id, rule.currency),
                "UpdateExpression": (
                    "SET threshold_minor = :t, amount_minor = :a, enabled = :e, armed = :armed,"
                    " crossings = if_not_exists(crossings, :zero) + :one"
                ),
                "ExpressionAttributeValues": to_item(
                    {
                        ":t": rule.threshold_minor,
                        ":a": rule.amount_minor,
                        ":e": rule.enabled,
                        ":armed": True,
                        ":zero": 0,
                        ":one": 1,
                    }
                ),
            }
        }

    def rearm(self, rule: AutoTopUpRule) -> None:
        """Arm again (credit is back over the threshold); a no-op if someone else did."""
        try:
            client("dynamodb").update_item(
                TableName=self.table_name,
                Key=_rule_key(rule.customer_id, rule.currency),
                UpdateExpression="SET armed = :t",
                ConditionExpression="armed = :f AND crossings = :c",
                ExpressionAttributeValues=to_item({":t": True, ":f": False, ":c": rule.crossings}),
            )
        except Exception as exc:
            if not is_condition_failure(exc):
                raise

    def raise_request(self, rule: AutoTopUpRule, request: TopUpRequest) -> bool:
        """Disarm the rule and store the request in one transaction; False if another caller won."""
        try:
            Transaction(
                [
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": _rule_key(rule.customer_id, rule.currency),
                            "UpdateExpression": "SET armed = :f, crossings = crossings + :one",
                            "ConditionExpression": "armed = :t AND crossings = :c AND enabled = :t",
                            "ExpressionAttributeValues": to_item(
                                {":f": False, ":t": True, ":one": 1, ":c": rule.crossings}
                            ),
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": to_item(
                                {
                                    "pk": f"CUS#{rule.customer_id}",
                                    "sk": f"TOPUPREQ#{rule.crossings + 1:010d}#{request.request_id}",
                                    "requested_at": ts(request.requested_at),
                                    "doc": json.dumps(request.to_dict()),
                                }
                            ),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            ).commit()
        except Exception as exc:
            if is_cancellation(exc):
                return False
            raise
        return True

    def requests(self, customer_id: str) -> list[TopUpRequest]:
        response = client("dynamodb").query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
            ExpressionAttributeValues=to_item({":p": f"CUS#{customer_id}", ":s": "TOPUPREQ#"}),
            ConsistentRead=True,
        )
        out = []
        for item in response["Items"]:
            d = json.loads(from_item(item)["doc"])
            out.append(
                TopUpRequest(
                    request_id=d["id"],
                    customer_id=d["customer_id"],
                    currency=d["currency"],
                    amount_minor=int(d["amount_minor"]),
                    available_minor=int(d["available_minor"]),
                    threshold_minor=int(d["threshold_minor"]),
                    requested_at=parse_ts(d["requested_at"]),
                )
            )
        return out  # in crossing order (the sort key)
