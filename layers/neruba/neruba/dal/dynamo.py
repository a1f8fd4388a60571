"""Converting between plain Python values and DynamoDB attribute maps.

Numbers come back as ``Decimal`` and floats are refused on the way in (boto3's serializer raises), so
no float can slip onto a money path through storage. Every number written goes through
:class:`_Serializer`, which holds it to DynamoDB's contract (``neruba.domain.numbers``: 38 significant
digits, magnitude 1E-130 to below 1E+126) and writes it as plain digits without exponent or trailing
zeros: a number DynamoDB would refuse is refused here, before any request (boto3 alone lets ``1E-131`` and
``1E+126`` through and refuses ``1.000...0`` with 39 zeros, which DynamoDB stores), with
``NumberNotStorableError`` naming the attribute.

Example:
    >>> to_item({"pk": "a", "n": 1})
    {'pk': {'S': 'a'}, 'n': {'N': '1'}}
    >>> from_item({"pk": {"S": "a"}, "n": {"N": "1"}})
    {'pk': 'a', 'n': Decimal('1')}
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import fields
from decimal import Decimal
from typing import Any, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from neruba.domain.numbers import NumberNotStorableError, canonical_text, check_storable

R = TypeVar("R")

BATCH_GET_KEYS = 100  # DynamoDB's limit of keys in one BatchGetItem

__all__ = [
    "BatchReadThrottledError",
    "NumberNotStorableError",
    "TransactionCancelledError",
    "batch_get",
    "from_item",
    "is_condition_failure",
    "is_transient",
    "plain",
    "put_if_absent",
    "record",
    "to_item",
    "to_value",
]


class _Serializer(TypeSerializer):  # type: ignore[misc]
    """boto3's serializer, with DynamoDB's number contract in place of boto3's decimal context."""

    def _serialize_n(self, value: Any) -> str:
        number = value if isinstance(value, int | Decimal) else Decimal(value)
        check_storable(number)
        return canonical_text(number)


class _Deserializer(TypeDeserializer):  # type: ignore[misc]
    """boto3's deserializer, reading numbers exactly. boto3 reads them in a 38-digit context that traps
    rounding, so a storable number DynamoDB returns written out in full (1E+38 as 39 digits, trailing
    zeros not significant) would raise ``decimal.Rounded``; the text DynamoDB returns is always exact."""

    def _deserialize_n(self, value: str) -> Decimal:
        return Decimal(value)

    def _deserialize_ns(self, value: list[str]) -> set[Decimal]:
        return {Decimal(v) for v in value}


_serializer = _Serializer()
_deserializer = _Deserializer()


def _serialize(key: str, value: Any) -> dict[str, Any]:
    try:
        return _serializer.serialize(value)  # type: ignore[no-any-return]
    except NumberNotStorableError as exc:
        raise NumberNotStorableError(exc.code, value, key) from None


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    """Serialize a mapping into a DynamoDB item, leaving out ``None`` values.

    Example:
        >>> to_item({"n": Decimal("1E+3"), "x": Decimal("2.50")})
        {'n': {'N': '1000'}, 'x': {'N': '2.5'}}
        >>> to_item({"n": Decimal("1E+126")})["n"]  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        neruba.domain.numbers.NumberNotStorableError: n: 1E+126 is not storable (...)
    """
    return {key: _serialize(key, value) for key, value in values.items() if value is not None}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Deserialize a DynamoDB item into plain Python values."""
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def plain(value: Any) -> Any:
    """``value`` with every whole ``Decimal`` in it (nested too) as an ``int``.

    Example:
        >>> plain({"n": Decimal("2"), "x": [Decimal("2.5")]})
        {'n': 2, 'x': [Decimal('2.5')]}
    """
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def record(kind: type[R], values: Mapping[str, Any], **given: Any) -> R:
    """A typed record (a dataclass) from the stored values named as its fields (``plain``), other
    attributes left out; ``given`` are the fields stored under another name or shape. A field with a
    default may be missing (an older item); a missing field without one raises ``TypeError``.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Seen:
        ...     n: int
        ...     note: str | None = None
        >>> record(Seen, {"pk": "a", "n": Decimal("3")})
        Seen(n=3, note=None)
    """
    names = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    found = {k: plain(v) for k, v in values.items() if k in names and k not in given}
    return kind(**found, **given)


def to_value(value: Any) -> dict[str, Any]:
    """Serialize one value (for ExpressionAttributeValues)."""
    return _serialize("value", value)


def is_condition_failure(exc: Exception) -> bool:
    """True when a botocore ClientError is a failed conditional write."""
    response = getattr(exc, "response", None) or {}
    return bool(response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def is_cancellation(exc: Exception) -> bool:
    """True when a TransactWriteItems was cancelled (a botocore ClientError or TransactionCancelledError)."""
    if isinstance(exc, TransactionCancelledError):
        return True
    response = getattr(exc, "response", None) or {}
    return bool(response.get("Error", {}).get("Code") == "TransactionCanceledException")


def put_if_absent(table_name: str, values: Mapping[str, Any]) -> bool:
    """Put an item unless one with its ``pk`` exists; True when this call wrote it.

    The one create-once write (a retry or a second writer gets False, never an error).

    Example:
        >>> put_if_absent(table, {"pk": "MIG#0001", "sk": "#", "name": "x"})  # doctest: +SKIP
        True
    """
    from neruba.dal.clients import client

    try:
        client("dynamodb").put_item(
            TableName=table_name, Item=to_item(values), ConditionExpression="attribute_not_exists(pk)"
        )
    except Exception as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True


class TransactionCancelledError(Exception):
    """A TransactWriteItems was cancelled; ``reasons`` lists each action's code (None when it passed)."""

    def __init__(self, reasons: list[str | None]) -> None:
        super().__init__(f"transaction cancelled: {reasons}")
        self.reasons = reasons


# Errors a retry may cure: capacity, throttling, service trouble, a transaction or item in the way.
_TRANSIENT_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
    "LimitExceededException",
}
_TRANSIENT_REASONS = {"TransactionConflict", "ProvisionedThroughputExceeded", "ThrottlingError"}


def is_transient(exc: BaseException) -> bool:
    """True when a failed write may succeed if tried again (SQS retries it), False when it never will.

    Example:
        >>> is_transient(ValueError("1E+400 is not storable"))
        False
    """
    from botocore.exceptions import ConnectionError as BotocoreConnectionError
    from botocore.exceptions import HTTPClientError

    if getattr(exc, "transient", False) or isinstance(exc, BotocoreConnectionError | HTTPClientError):
        return True
    if isinstance(exc, TransactionCancelledError):  # what ``Transaction.commit`` raises
        cancelled = {r for r in exc.reasons if r is not None}
        return bool(cancelled) and cancelled <= _TRANSIENT_REASONS
    response = getattr(exc, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    if code in _TRANSIENT_CODES:
        return True
    reasons = {r.get("Code") for r in response.get("CancellationReasons", [])} - {"None", None}
    return code == "TransactionCanceledException" and bool(reasons) and reasons <= _TRANSIENT_REASONS


class BatchReadThrottledError(RuntimeError):
    """Keys of a BatchGetItem were still unprocessed after every attempt (the table is throttling).
    Retryable: ``is_transient`` is True for it, so a queue worker hands the message back to SQS."""

    transient = True


def query_items(request: Mapping[str, Any], *, scan: bool = False) -> Iterator[dict[str, Any]]:
    """The one paginated read: every item a ``Query`` (``scan=True``: a ``Scan``) request reads, decoded,
    page by page.

    ``request`` is any request of the operation: a key condition on the table or an index, a projection, a
    filter, an order, a consistent read, a start key, ``Limit`` (items per request). The reading is lazy: a
    page is requested only once every item of the one before was taken, so a caller that stops iterating
    (``itertools.islice`` for at most n items, a ``break``) reads no page after the one it stopped in.
    Callers that need the page boundaries themselves (a list page whose cursor is a ``LastEvaluatedKey``,
    a read budget counted in scanned items) do not use it (docs/architecture.md, Paginated reads).

    Example:
        >>> list(query_items({"TableName": t, "KeyConditionExpression": "pk = :p",
        ...                   "ExpressionAttributeValues": {":p": {"S": "a"}}}))  # doctest: +SKIP
        [{'pk': 'a', 'sk': '#'}]
    """
    from neruba.dal.clients import client

    request = dict(request)
    while True:
        dynamodb = client("dynamodb")
        response = (dynamodb.scan if scan else dynamodb.query)(**request)
        yield from (from_item(item) for item in response.get("Items", []))
        last = response.get("LastEvaluatedKey")
        if last is None:
            return
        request["ExclusiveStartKey"] = last


def partition_items(table_name: str, pk: str) -> Iterator[dict[str, Any]]:
    """Every item of one partition in key order, decoded, page by page (a consistent read)."""
    return query_items(
        {
            "TableName": table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
        }
    )


def batch_get(
    table_name: str,
    keys: Iterable[Mapping[str, Any]],
    *,
    consistent: bool = True,
    projection: str | None = None,
    attempts: int = 8,
) -> list[dict[str, Any]]:
    """The items of ``keys`` that exist, as plain values, in no particular order.

    The one BatchGetItem loop: keys are asked once each (a repeated key is dropped), 100 per request,
    read consistently unless ``consistent`` is False, limited to ``projection`` when given. Keys DynamoDB
    leaves unprocessed are asked again after a growing pause (50 ms, doubling); when some remain after
    ``attempts`` requests of a batch, ``BatchReadThrottledError`` (retryable) is raised.

    Example:
        >>> batch_get(table, [{"pk": {"S": "a"}, "sk": {"S": "#"}}], projection="pk, sk")  # doctest: +SKIP
        [{'pk': 'a', 'sk': '#'}]
    """
    from neruba.dal.clients import client

    unique = list({json.dumps(key, sort_keys=True, default=repr): key for key in keys}.values())
    found: list[dict[str, Any]] = []
    for start in range(0, len(unique), BATCH_GET_KEYS):
        chunk = unique[start : start + BATCH_GET_KEYS]
        request: dict[str, Any] = {"Keys": chunk, "ConsistentRead": consistent}
        if projection:
            request["ProjectionExpression"] = projection
        pending: dict[str, Any] = {table_name: request}
        for attempt in range(attempts):
            if attempt:
                time.sleep(0.05 * (2 ** (attempt - 1)))
            response = client("dynamodb").batch_get_item(RequestItems=pending)
            found.extend(from_item(raw) for raw in response.get("Responses", {}).get(table_name, []))
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                break
        if pending:
            raise BatchReadThrottledError(
                f"batch read of {table_name} throttled: keys still unprocessed after {attempts} requests"
            )
    return found
