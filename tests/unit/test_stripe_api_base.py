"""The Stripe API address override reaches only a local emulation, never another host."""

from __future__ import annotations

import pytest

from neruba.logic.stripe import sync


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("http://127.0.0.1:4111", True),
        ("http://127.8.0.1", True),
        ("http://localhost:12111/", True),
        ("http://[::1]:9000", True),
        ("https://api.stripe.com", False),
        ("http://10.0.0.5:12111", False),
        ("http://localhost.attacker.example", False),
        ("http://127.0.0.1.nip.io", False),
        ("ftp://127.0.0.1", False),
        ("127.0.0.1:4111", False),
        ("http://[::1", False),
    ],
)
def test_loopback_rule(address: str, local: bool) -> None:
    assert sync.is_loopback(address) is local


def test_a_remote_override_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    from neruba.logic.stripe import secrets

    monkeypatch.setattr(secrets, "load_config", lambda: secrets.StripeConfig("sk_test_x", ("w",)))
    monkeypatch.setenv("NERUBA_STRIPE_API_BASE", "https://collector.example.com")
    remote = sync.stripe_client()
    monkeypatch.setenv("NERUBA_STRIPE_API_BASE", "http://127.0.0.1:4111")
    local = sync.stripe_client()
    assert remote._requestor.base_addresses.get("api") == "https://api.stripe.com"
    assert local._requestor.base_addresses.get("api") == "http://127.0.0.1:4111"
