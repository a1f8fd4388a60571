"""The one unit of work over DynamoDB: collect actions, commit them once as one TransactWriteItems.

Nothing is sent until :meth:`Transaction.commit`, so there is nothing to roll back: a unit that is not
committed wrote nothing, and a committed one wrote all of its actions or none of them. Actions may carry a
name; when DynamoDB cancels the transaction, :class:`Cancelled` answers by that name (``failed("invoice")``)
rather than by the action's position, so adding an action never shifts what a reason means.

Limits: DynamoDB takes at most 100 actions in one transaction (more raise ``ValueError`` before any
request). No ``ClientRequestToken`` is sent: every retried write is made safe by its own conditions
(idempotency guards, ``attribute_not_exists``), which also hold after DynamoDB's ten-minute token window.

Example::

    unit = Transaction()
    unit.add(invoices.put_item(doc, due), name="invoice")
    unit.add(billing.advance_item(...), name="state")
    try:
        commit(unit)
    except Cancelled as exc:
        if exc.failed("invoice"): ...
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from neruba.dal.clients import client
from neruba.dal.dynamo import TransactionCancelledError, from_item

__all__ = ["LIMIT", "Cancelled", "Transaction", "commit", "items_touched"]

LIMIT = 100  # actions in one TransactWriteItems
CONDITION_FAILED = "ConditionalCheckFailed"


class Cancelled(TransactionCancelledError):
    """A cancelled unit; ``reasons`` is positional (as DynamoDB gives it), the methods read it by name."""

    def __init__(
        self, reasons: list[str | None], names: list[str | None], items: list[dict[str, Any] | None]
    ) -> None:
        super().__init__(reasons)
        self.names = names
        self.items = items

    def reason(self, name: str) -> str | None:
        """The cancellation code of the first action named ``name`` that did not pass (None if all did)."""
        for action_name, code in zip(self.names, self.reasons, strict=False):
            if action_name == name and code is not None:
                return code
        return None

    def failed(self, name: str) -> bool:
        """True when an action named ``name`` failed its condition."""
        return self.reason(name) == CONDITION_FAILED

    def item(self, name: str) -> dict[str, Any] | None:
        """The stored item that failed the condition of the action named ``name`` (when the action asked
        for it with ``ReturnValuesOnConditionCheckFailure``), as plain values."""
        for action_name, item in zip(self.names, self.items, strict=False):
            if action_name == name and item is not None:
                return item
        return None


class Transaction:
    """Actions collected for one TransactWriteItems; iterable over the actions in order."""

    def __init__(self, actions: Iterable[dict[str, Any]] = ()) -> None:
        self._actions: list[dict[str, Any]] = []
        self._names: list[str | None] = []
        self.extend(actions)

    def add(self, action: dict[str, Any], *, name: str | None = None) -> Transaction:
        """Add one action (``Put``, ``Update``, ``Delete`` or ``ConditionCheck``), optionally named."""
        self._actions.append(action)
        self._names.append(name)
        return self

    def extend(self, actions: Iterable[dict[str, Any]], *, name: str | None = None) -> Transaction:
        """Add several actions, all under ``name`` when given."""
        for action in actions:
            self.add(action, name=name)
        return self

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._actions)

    def __len__(self) -> int:
        return len(self._actions)

    def commit(self) -> None:
        """Send the actions as one transaction; a cancellation raises :class:`Cancelled`."""
        if len(self._actions) > LIMIT:
            raise ValueError(f"{len(self._actions)} actions: over the {LIMIT}-action transaction limit")
        try:
            client("dynamodb").transact_write_items(TransactItems=list(self._actions))
        except Exception as exc:
            reasons = (getattr(exc, "response", None) or {}).get("CancellationReasons")
            if reasons is None:
                raise
            codes = [r.get("Code") if r.get("Code") not in (None, "None") else None for r in reasons]
            items = [from_item(r["Item"]) if "Item" in r else None for r in reasons]
            raise Cancelled(codes, list(self._names), items) from exc


def items_touched(actions: Iterable[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The item each action writes or checks, as (table, pk, sk), in order: DynamoDB refuses a transaction
    with two actions on one item, so callers merging actions from several places compare these."""
    found = []
    for action in actions:
        ((_kind, body),) = action.items()
        key = body.get("Key") or body.get("Item") or {}
        found.append((str(body.get("TableName")), str(key.get("pk")), str(key.get("sk"))))
    return found


def commit(unit: Transaction) -> None:
    """Commit ``unit`` (the name fault-injection tests replace in the module that commits)."""
    unit.commit()
