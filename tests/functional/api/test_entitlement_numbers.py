"""A metered entitlement's limit raised by grants, and what remains of it, are exact to the digits the
API takes (docs/limits.md, "Exact limit counters"): never rounded to 28 digits."""

from __future__ import annotations

from typing import Any

from tests.functional.api.test_entitlement_grants import _admin, _entitlement, _grant

WIDE = {
    "features": [
        {
            "feature": "calls",
            "kind": "metered",
            "meter_code": "api_calls",
            "limit": "999999999999999999999999.5",
        }
    ]
}


def test_a_grant_on_a_wide_allowance_adds_every_digit(catalog: Any) -> None:
    # GIVEN an allowance of 25 significant digits
    assert _admin("PUT", "/v1/customers/acme/limits", WIDE, customer_id="acme")[0] == 200
    # WHEN two grants add 0.000001 and 0.000002 (30 significant digits in all)
    assert _grant({"amount": "0.000001", "reason": "r"}, "g-1")[0] == 201
    status, grant = _grant({"amount": "0.000002", "reason": "r"}, "g-2")
    assert status == 201, grant
    # THEN the limit, the granted total and the remaining read back exactly
    row = _entitlement()
    assert (row["limit"], row["granted"], row["remaining"]) == (
        "999999999999999999999999.500003",
        "0.000003",
        "999999999999999999999999.500003",
    )
    assert grant["entitlement"]["limit"] == "999999999999999999999999.500003"
