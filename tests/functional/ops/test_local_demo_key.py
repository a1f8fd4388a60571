"""The local stack's demo key: one key kept with the stack's state, not another active admin key per start."""

from __future__ import annotations

from neruba.dal.keys import KeysRepository
from neruba.settings import get_settings
from neruba_tools.local.seed import seed_demo


def test_seeding_again_reuses_the_demo_key(aws: dict[str, str]) -> None:
    first = seed_demo()
    second = seed_demo()
    assert second.api_key == first.api_key
    keys = KeysRepository(get_settings().keys_table)
    demo = [k for k in keys.list() if k.name == "local demo" and k.active]
    assert len(demo) == 1


def test_a_revoked_demo_key_is_replaced(aws: dict[str, str]) -> None:
    first = seed_demo()
    keys = KeysRepository(get_settings().keys_table)
    keys.revoke(next(k.key_id for k in keys.list() if k.name == "local demo"))
    second = seed_demo()
    assert second.api_key != first.api_key and keys.authenticate(second.api_key) is not None
