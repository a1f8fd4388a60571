"""API keys are stored hashed; the authorizer admits only active keys and passes their scopes on."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from neruba.api.authorizer import UnauthorizedError, authorize
from neruba.dal.keys import KeysRepository
from neruba.settings import get_settings
from tests.support.api import fixture


@pytest.fixture
def keys(aws: dict[str, str]) -> KeysRepository:
    return KeysRepository(get_settings().keys_table)


def _token_event(token: str | None) -> dict[str, Any]:
    event = fixture("authorizer.json")
    event["authorizationToken"] = token
    return event


def test_key_is_stored_only_as_a_hash(keys: KeysRepository) -> None:
    # GIVEN a new key
    plaintext, key = keys.create(frozenset({"read"}), name="dash")
    # WHEN the table is read raw
    items = boto3.client("dynamodb").scan(TableName=get_settings().keys_table)["Items"]
    # THEN the plaintext appears nowhere, and the key authenticates
    assert plaintext not in repr(items)
    assert keys.authenticate(plaintext) == key


def test_authorizer_allows_a_valid_key_with_its_scopes(keys: KeysRepository) -> None:
    plaintext, key = keys.create(frozenset({"ingest", "read"}))
    policy = authorize(_token_event(f"Bearer {plaintext}"))
    assert policy["principalId"] == f"key:{key.key_id}"
    assert policy["context"] == {"key_id": key.key_id, "scopes": "ingest read"}
    statement = policy["policyDocument"]["Statement"][0]
    assert statement["Effect"] == "Allow"
    assert statement["Resource"] == "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/*"


@pytest.mark.parametrize(
    "token", [None, "", "Bearer", "Basic abc", "Bearer nrb_0123456789ab_" + "x" * 43, "Bearer not-a-key"]
)
def test_authorizer_refuses_missing_malformed_and_unknown_keys(
    keys: KeysRepository, token: str | None
) -> None:
    with pytest.raises(UnauthorizedError, match=r"^Unauthorized$"):
        authorize(_token_event(token))


def test_revoked_and_rotated_keys_stop_working(keys: KeysRepository) -> None:
    # GIVEN two keys, one revoked and one rotated
    revoked, revoked_key = keys.create(frozenset({"read"}))
    rotated, rotated_key = keys.create(frozenset({"admin"}), name="ops")
    keys.revoke(revoked_key.key_id)
    replacement, new_key = keys.rotate(rotated_key.key_id)
    # THEN only the replacement authenticates, with the same scopes and name
    assert keys.authenticate(revoked) is None
    assert keys.authenticate(rotated) is None
    assert keys.authenticate(replacement) == new_key
    assert new_key.scopes == frozenset({"admin"}) and new_key.name == "ops"
    listed = {k.key_id: k for k in keys.list()}
    assert listed[rotated_key.key_id].rotated_to == new_key.key_id
    assert all("…" in k.prefix for k in listed.values())


def test_authorizer_handler_answers_like_api_gateway_expects(keys: KeysRepository) -> None:
    from functions.authorizer.app import lambda_handler
    from tests.support.lambda_context import FakeContext

    plaintext, _ = keys.create(frozenset({"read"}))
    assert lambda_handler(_token_event(f"Bearer {plaintext}"), FakeContext())["context"]["scopes"] == "read"
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        lambda_handler(_token_event("Bearer nope"), FakeContext())


def test_a_key_rotates_once_and_its_overlap_is_never_extended(keys: KeysRepository) -> None:
    from datetime import UTC, datetime, timedelta

    # GIVEN a key rotated with a one-hour overlap
    old, old_key = keys.create(frozenset({"ingest"}))
    until = datetime.now(UTC) + timedelta(hours=1)
    _, first = keys.rotate(old_key.key_id, old_works_until=until)
    ends = keys.get(old_key.key_id)[0].revoked_at
    # WHEN it is rotated again during the overlap
    with pytest.raises(ValueError, match="already rotated"):
        keys.rotate(old_key.key_id, old_works_until=until + timedelta(hours=5))
    # THEN there is one successor, and the old key still stops when the first rotation said
    listed = keys.list()
    assert [k.key_id for k in listed if k.key_id not in (old_key.key_id,)] == [first.key_id]
    assert keys.get(old_key.key_id)[0].revoked_at == ends
    assert keys.authenticate(old) is not None  # still within the overlap
