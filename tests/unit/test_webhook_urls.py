"""Which URLs a webhook endpoint may have, per stage (resolution is injected: no network)."""

from __future__ import annotations

import pytest

from neruba.logic.webhooks.urls import UrlRefusedError, check_url


def resolving(*addresses: str):  # type: ignore[no-untyped-def]
    return lambda host: list(addresses)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8123/hooks", "http://localhost:9000/x", "http://[::1]:80/", "https://example.com/h"],
)
def test_locally_loopback_http_and_any_https_are_allowed(url: str) -> None:
    assert check_url(url, "local", resolving("10.0.0.1")) == url


@pytest.mark.parametrize(
    ("url", "stage", "code"),
    [
        ("http://example.com/hooks", "local", "url_not_https"),
        ("http://192.168.1.5/hooks", "local", "url_not_https"),
        ("ftp://example.com/hooks", "local", "invalid_url"),
        ("https://user:pw@example.com/", "prod", "invalid_url"),
        ("http://127.0.0.1:8123/hooks", "prod", "url_not_https"),
        ("http://example.com/hooks", "dev", "url_not_https"),
    ],
)
def test_scheme_rules(url: str, stage: str, code: str) -> None:
    with pytest.raises(UrlRefusedError) as raised:
        check_url(url, stage, resolving("93.184.216.34"))
    assert raised.value.code == code


@pytest.mark.parametrize(
    "address",
    ["10.1.2.3", "172.16.0.1", "192.168.0.10", "127.0.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",  # noqa: S104
     "::1", "fe80::1", "fd00::1", "::ffff:10.0.0.1", "224.0.0.1"],
)  # fmt: skip
def test_deployed_stages_refuse_hosts_resolving_to_non_public_addresses(address: str) -> None:
    with pytest.raises(UrlRefusedError) as raised:
        check_url("https://hooks.example.com/x", "prod", resolving("93.184.216.34", address))
    assert raised.value.code == "url_address_refused"


def test_deployed_stages_allow_https_to_public_addresses() -> None:
    url = "https://hooks.example.com/x"
    assert check_url(url, "prod", resolving("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")) == url
