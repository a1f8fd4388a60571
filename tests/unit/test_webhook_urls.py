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


# An IPv6 address that carries an IPv4 address (NAT64, 6to4, Teredo, the deprecated IPv4-compatible form)
# reaches that IPv4 address through a translator: it is judged as the IPv4 address it carries.
@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a9fe:a9fe",  # NAT64 well-known prefix + 169.254.169.254
        "64:ff9b::a00:1",  # NAT64 + 10.0.0.1
        "64:ff9b:1::a00:1",  # NAT64 local-use prefix + 10.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo: client 10.0.0.1 (obfuscated)
        "::7f00:1",  # IPv4-compatible 127.0.0.1
        "::a9fe:a9fe",  # IPv4-compatible 169.254.169.254
    ],
)
def test_an_ipv6_address_carrying_a_non_public_ipv4_address_is_refused(address: str) -> None:
    with pytest.raises(UrlRefusedError) as raised:
        check_url("https://hooks.example.com/x", "prod", resolving(address))
    assert raised.value.code == "url_address_refused"
    with pytest.raises(UrlRefusedError):
        check_url(f"https://[{address}]/x", "prod")  # the literal, resolved for real


@pytest.mark.parametrize("address", ["64:ff9b::5db8:d822", "2002:5db8:d822::1", "::ffff:93.184.216.34"])
def test_an_ipv6_address_carrying_a_public_ipv4_address_is_allowed(address: str) -> None:
    url = "https://hooks.example.com/x"
    assert check_url(url, "prod", resolving(address)) == url
