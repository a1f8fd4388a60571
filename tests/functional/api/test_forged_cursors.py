"""Forged pagination cursors on every opaque-cursor list route: each is 400 invalid_cursor, never a 500.

A cursor is a DynamoDB key sealed to the query that produced it, base64-encoded JSON. The seal is checked
first; the cursors below are sealed the way the repositories seal them (``QUERY_IDENTITY``), so they also
reach the key's own checks: a key naming the right attributes and the right partition but holding a
number, a list, an empty string or a nested structure where DynamoDB expects a string used to reach
DynamoDB (a 500); ``dal.cursors.decode_cursor`` refuses them for every route.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.functional.api.test_limits import LIST_ROUTES, OPAQUE_FORGERIES, _list

# the key attributes and partition value of each route's query (what a genuine cursor holds)
QUERY_KEYS: dict[str, dict[str, str]] = {
    "/v1/customers": {"kind": "customer", "list_key": "acme", "pk": "CUS#acme", "sk": "#"},
    "/v1/meters": {"kind": "meter", "list_key": "m", "pk": "MTR#m", "sk": "#"},
    "/v1/plans": {"kind": "plan", "list_key": "p", "pk": "PLN#p", "sk": "#"},
    "/v1/customers/acme/ledger": {"pk": "CUS#acme", "sk": "PST#1"},
    "/admin/audit": {"pk": "AUD#acme", "sk": "1"},
    "/v1/customers/acme/credit-grants": {
        "gsi1pk": "GRT#acme",
        "gsi1sk": "2026-01-01T00:00:00.000000Z#cg_1",
        "pk": "GRANT#cg_1",
        "sk": "#",
    },
    "/v1/invoices": {"list_pk": "INVC#acme", "list_sk": "2026-01-01T00:00:00Z#1", "pk": "INV#1", "sk": "#"},
    "/admin/billing-runs": {"list_pk": "RUNS", "list_sk": "2026-01-01T00:00:00Z#1", "pk": "RUN#1", "sk": "#"},
    "/admin/webhook-endpoints": {"pk": "WHEP", "sk": "we_0"},
    "/admin/coupons": {"pk": "CPN", "sk": "co_0"},
    "/admin/tax-rates": {"pk": "TXR", "sk": "txr_0"},
    "/admin/discounts": {"pk": "DSC#acme", "sk": "di_0"},
    "/admin/webhook-events": {"pk": "WHEVC#acme", "sk": "000000000001"},
    # a position in the events list: meter, contribution sort key, index among its ids
    "/v1/events": {"m": "api_calls", "sk": "2026-01-01T05##b1", "i": "0"},
}
# what each repository seals its cursors to, for the query the route is called with below
QUERY_IDENTITY: dict[str, dict[str, Any]] = {
    "/v1/customers": {"list": "customer", "prefix": "", "order": "list_key"},
    "/v1/meters": {"list": "meter", "prefix": "", "order": "list_key"},
    "/v1/plans": {"list": "plan", "prefix": "", "order": "list_key"},
    "/v1/customers/acme/ledger": {"list": "postings", "customer": "acme", "order": "newest"},
    "/admin/audit": {"list": "audit", "customer": "acme", "order": "newest"},
    "/v1/customers/acme/credit-grants": {"list": "credit_grants", "customer": "acme", "order": "effective"},
    "/v1/invoices": {
        "list": "invoices",
        "customer": "acme",
        "status": None,
        "period": [None, None],
        "order": "newest",
    },
    "/admin/billing-runs": {"list": "billing_runs", "order": "newest"},
    "/admin/webhook-endpoints": {"list": "webhook_endpoints", "order": "id"},
    "/admin/coupons": {"list": "coupons", "partition": "CPN", "order": "id"},
    "/admin/tax-rates": {"list": "tax_rates", "partition": "TXR", "order": "id"},
    "/admin/discounts": {"list": "discounts", "partition": "DSC#acme", "order": "id"},
    "/admin/webhook-events": {
        "list": "webhook_events",
        "customer_id": "acme",
        "type": None,
        "from": None,
        "to": None,
        "order": "sequence_desc",
    },
    "/v1/events": {
        "list": "events",
        "customer": "acme",
        "meters": sorted(["api_calls", "tokens", "storage_gb", "seats", "plan_level", "eu_calls"]),
        "from": "2026-01-01T00:00:00.000000Z",
        "to": "2026-01-02T00:00:00.000000Z",
        "order": "hour",
    },
}
PARTITIONS = {"kind", "pk", "list_pk"}
BAD_VALUES: dict[str, Any] = {
    "a number": 7,
    "a list": ["a"],
    "an object": {"a": "b"},
    "null": None,
    "an empty string": "",
}


def _raw(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _cursor(key: Any, path: str) -> str:
    """A cursor holding ``key``, sealed to the route's query as its repository seals its own."""
    from neruba.dal.cursors import encode_cursor

    return encode_cursor(key, QUERY_IDENTITY[path])


def _forgeries(path: str) -> dict[str, str]:
    """Cursors shaped like the route's own keys, with one non-string key value each."""
    genuine = QUERY_KEYS[path]
    forged = {}
    for attribute in genuine:
        for name, value in BAD_VALUES.items():
            key = {a: {"S": v} for a, v in genuine.items()}
            key[attribute] = {"S": value}
            forged[f"{attribute} {name}"] = _cursor(key, path)
        forged[f"{attribute} typed N"] = _cursor(
            {**{a: {"S": v} for a, v in genuine.items()}, attribute: {"N": "1"}}, path
        )
    forged["nested 700 deep"] = base64.urlsafe_b64encode(("[" * 700 + "]" * 700).encode()).decode()
    forged["a key named twice"] = base64.urlsafe_b64encode(
        (
            "{"
            + ",".join(f'"{a}": {{"S": "{v}"}}' for a, v in [*genuine.items(), next(iter(genuine.items()))])
            + "}"
        ).encode()
    ).decode()
    return forged


OPAQUE_ROUTES = [row for row in LIST_ROUTES if row[3] is OPAQUE_FORGERIES]


def test_every_opaque_cursor_route_has_its_key_shape() -> None:
    # THEN each list route taking an opaque cursor is covered here
    assert {path.split("?")[0] for _, path, _, _ in OPAQUE_ROUTES} == set(QUERY_KEYS) == set(QUERY_IDENTITY)


@pytest.mark.parametrize(
    ("folder", "path", "query"), [row[:3] for row in OPAQUE_ROUTES], ids=[row[1] for row in OPAQUE_ROUTES]
)
def test_a_cursor_whose_key_values_are_not_strings_is_400(
    catalog: Any, folder: str, path: str, query: dict[str, str]
) -> None:
    for name, cursor in _forgeries(path).items():
        # WHEN the route gets a cursor of its own shape holding something else than a string
        got, body = _list(folder, path, {**query, "starting_after": cursor})
        # THEN 400 invalid_cursor (not a 500 from DynamoDB)
        assert (got, body["error"]["code"]) == (400, "invalid_cursor"), (name, body)


@pytest.mark.parametrize(
    ("folder", "path", "query"), [row[:3] for row in OPAQUE_ROUTES], ids=[row[1] for row in OPAQUE_ROUTES]
)
def test_a_cursor_of_the_right_shape_is_accepted(
    catalog: Any, folder: str, path: str, query: dict[str, str]
) -> None:
    # GIVEN a cursor holding strings in the route's own key attributes (as the route hands them out)
    key = {a: {"S": v} for a, v in QUERY_KEYS[path].items()}
    # WHEN it is used THEN the route answers a page (the forgeries above fail for their values only)
    got, body = _list(folder, path, {**query, "starting_after": _cursor(key, path)})
    assert got == 200 and body["object"] == "list", body


@pytest.mark.parametrize(
    ("folder", "path", "query"), [row[:3] for row in OPAQUE_ROUTES], ids=[row[1] for row in OPAQUE_ROUTES]
)
def test_a_key_without_its_seal_or_sealed_to_another_query_is_400(
    catalog: Any, folder: str, path: str, query: dict[str, str]
) -> None:
    from neruba.dal.cursors import encode_cursor

    key = {a: {"S": v} for a, v in QUERY_KEYS[path].items()}
    sealed = json.loads(base64.urlsafe_b64decode(_cursor(key, path) + "=="))
    forged = {
        "the bare key (an unsealed cursor)": _raw(key),
        "sealed to another list": encode_cursor(key, {**QUERY_IDENTITY[path], "list": "other"}),
        "sealed to another order": encode_cursor(key, {**QUERY_IDENTITY[path], "order": "oldest"}),
        "the seal of another key": _raw({"k": {**key, "sk": {"S": "zz"}}, "v": sealed["v"]}),
        "the seal edited": _raw({"k": key, "v": sealed["v"][::-1]}),
        "the seal left out": _raw({"k": key}),
        "an extra field": _raw({**sealed, "x": 1}),
    }
    for name, cursor in forged.items():
        # WHEN the route gets the right key without the seal its own query gives it
        got, body = _list(folder, path, {**query, "starting_after": cursor})
        # THEN 400 invalid_cursor
        assert (got, body["error"]["code"]) == (400, "invalid_cursor"), (name, body)


OTHER_PARTITION = {
    "kind": "meter",
    "pk": "CUS#globex",
    "list_pk": "INVC#globex",
    "c": "globex",
    "m": "not_a_meter_of_this_list",
    "gsi1pk": "GRT#globex",
}


@pytest.mark.parametrize(
    ("folder", "path", "query"), [row[:3] for row in OPAQUE_ROUTES], ids=[row[1] for row in OPAQUE_ROUTES]
)
def test_a_cursor_of_another_partition_is_400(
    catalog: Any, folder: str, path: str, query: dict[str, str]
) -> None:
    # GIVEN a cursor of the route's own shape whose partition is another query's (another customer, kind
    # or list)
    genuine = QUERY_KEYS[path]
    partition = next(a for a in ("kind", "list_pk", "gsi1pk", "c", "m", "pk") if a in genuine)
    other = OTHER_PARTITION[partition] if OTHER_PARTITION[partition] != genuine[partition] else "plan"
    key = {a: {"S": v} for a, v in {**genuine, partition: other}.items()}
    if path == "/admin/billing-runs":
        key["list_pk"] = {"S": "INVC#acme"}  # the invoices' partition of the same index
    # WHEN it is used THEN 400 invalid_cursor: a page of another customer's list is never served
    got, body = _list(folder, path, {**query, "starting_after": _cursor(key, path)})
    assert (got, body["error"]["code"]) == (400, "invalid_cursor"), body


# the table key of another item than the one the cursor's index key names
OTHER_ITEM = {
    "/v1/customers": {"pk": "MTR#m"},
    "/v1/meters": {"pk": "CUS#acme"},
    "/v1/plans": {"pk": "SUB#p"},
    "/v1/invoices": {"pk": "INV#2"},
    "/admin/billing-runs": {"pk": "INV#1"},
    "/v1/customers/acme/credit-grants": {"pk": "GRANT#cg_2"},
}


@pytest.mark.parametrize("path", sorted(OTHER_ITEM))
def test_a_cursor_whose_table_key_is_another_item_is_400(catalog: Any, path: str) -> None:
    # GIVEN a cursor of an index list whose index key is the route's own but whose table key names another
    # item (a cursor no page of this list handed out)
    folder, _, query, _ = next(row for row in OPAQUE_ROUTES if row[1] == path)
    key = {a: {"S": v} for a, v in {**QUERY_KEYS[path], **OTHER_ITEM[path]}.items()}
    # WHEN it is used THEN 400 invalid_cursor
    got, body = _list(folder, path, {**query, "starting_after": _cursor(key, path)})
    assert (got, body["error"]["code"]) == (400, "invalid_cursor"), body
