"""The composition root builds every repository on its configured table, and a replacement installed
there is what the use cases that used to build their own repositories now get."""

from __future__ import annotations

from typing import Any

import pytest

from neruba import bootstrap
from neruba.settings import get_settings


@pytest.mark.parametrize("name", sorted(bootstrap._REPOSITORIES))
def test_each_repository_part_is_built_once_on_its_table(name: str) -> None:
    # GIVEN the settings of this process
    module, cls, table = bootstrap._REPOSITORIES[name]
    # WHEN the part is asked for twice
    first, second = getattr(bootstrap, name)(), getattr(bootstrap, name)()
    # THEN it is one object of its class, on the table its settings name
    assert first is second
    assert type(first).__name__ == cls and type(first).__module__ == module
    assert first.table_name == getattr(get_settings(), table)
    assert name in bootstrap.PARTS


class _Keys:
    """A key store that knows one token."""

    def authenticate(self, token: str) -> Any:
        from neruba.dal.keys import ApiKey

        if token != "nrb_test_known":
            return None
        return ApiKey(key_id="k1", name="test", scopes=frozenset({"read"}), created_at="x")


def test_installed_repositories_reach_the_use_cases() -> None:
    # GIVEN replacements installed for the ledger, the billing records and the keys
    ledger, records = object(), object()
    bootstrap.install(ledger=ledger, billing_records=records, keys=_Keys())
    # WHEN the ledger reads, the subscription writes, the billing context and the authorizer ask for them
    from neruba.api.authorizer import authorize
    from neruba.logic.catalog.subscriptions import _billing
    from neruba.logic.ledger.reads import ledger_repo

    # THEN each gets the installed object
    assert ledger_repo() is ledger
    assert _billing() is records
    context = bootstrap.billing()
    assert (context.ledger, context.billing) == (ledger, records)
    allowed = authorize({"authorizationToken": "Bearer nrb_test_known", "methodArn": "arn:x/prod/GET/v1"})
    assert allowed["principalId"] == "key:k1"
