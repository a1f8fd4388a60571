"""Which URLs an endpoint may have, checked when it is saved and again before every attempt.

- Deployed stages (``dev``, ``prod``): ``https`` only, and every address the host resolves to must be a
  public one (no private, loopback, link-local, including the 169.254.169.254 metadata address,
  carrier-grade NAT, multicast, reserved or unspecified ones).
- Everywhere: no whitespace or control character, and a port (when given) from 1 to 65535
  (:func:`neruba.models.webhooks.url_problem`).
- ``local``: ``https`` anywhere, or ``http`` to a loopback host (``localhost``, 127.0.0.0/8, ``::1``), so
  ``neruba webhooks listen`` can receive.

At delivery (:func:`checked_addresses`) the worker connects to an address it has just checked, so a DNS
answer that changes between the check and the connection (DNS rebinding) cannot steer the POST to a
private address; TLS still verifies the certificate against the URL's host name.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from neruba.models.webhooks import url_problem

Resolver = Callable[[str], list[str]]
LOOPBACK_NAMES = ("localhost",)


class UrlRefusedError(ValueError):
    """A URL an endpoint may not have; ``code`` is the API error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def resolve(host: str) -> list[str]:
    """Every address ``host`` resolves to (an IP literal is itself)."""
    try:
        return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None)})
    except OSError as exc:
        raise UrlRefusedError("url_unresolvable", f"The URL's host {host!r} does not resolve.") from exc


NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known prefix: the last 32 bits are the IPv4 address
REFUSED_V6 = (
    ipaddress.ip_network("64:ff9b:1::/48"),  # NAT64 for local use only (RFC 8215)
    ipaddress.ip_network("::/96"),  # IPv4-compatible addresses (deprecated) and the unspecified one
)


def _carried(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address reaches through a translator or tunnel: IPv4-mapped, NAT64,
    6to4 and Teredo (its client)."""
    carried = [ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None]
    if ip in NAT64:
        carried.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [v4 for v4 in carried if v4 is not None]


def _is_public(address: str) -> bool:
    """A global unicast address (``is_global`` leaves out private, loopback, link-local, CGNAT,
    reserved and unspecified ones). An IPv6 address that carries an IPv4 address is public only when that
    IPv4 address is too (a NAT64 gateway or 6to4 relay would deliver to it)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # the IPv4 address itself, written as IPv6
            return _is_public(str(ip.ipv4_mapped))
        if any(ip in network for network in REFUSED_V6):
            return False
        if not all(_is_public(str(v4)) for v4 in _carried(ip)):
            return False
    return ip.is_global and not ip.is_multicast


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, stage: str, resolver: Resolver = resolve) -> str:
    """``url`` when an endpoint may have it in ``stage``; :class:`UrlRefusedError` otherwise."""
    checked_addresses(url, stage, resolver)
    return url


def checked_addresses(url: str, stage: str, resolver: Resolver = resolve) -> list[str]:
    """The public addresses ``url``'s host resolved to when checked (deployed stages: the attempt
    connects to one of these, never resolving again); ``[]`` locally. Raises :class:`UrlRefusedError`."""
    problem = url_problem(url)
    if problem is not None:
        raise UrlRefusedError("invalid_url", f"url {problem}.")
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise UrlRefusedError("invalid_url", "url must be an absolute http(s) URL with a host.")
    if parts.username or parts.password:
        raise UrlRefusedError("invalid_url", "url must not carry a user name or password.")
    if stage == "local":
        if parts.scheme == "http" and not _is_loopback(host):
            raise UrlRefusedError("url_not_https", "Locally, http is allowed only to a loopback host.")
        return []
    if parts.scheme != "https":
        raise UrlRefusedError("url_not_https", "url must use https.")
    addresses = resolver(host)
    refused = [a for a in addresses if not _is_public(a)]
    if refused:
        raise UrlRefusedError(
            "url_address_refused",
            f"url's host resolves to an address that is not public ({refused[0]}): endpoints must be "
            "reachable on the internet.",
        )
    if not addresses:
        raise UrlRefusedError("url_unresolvable", f"The URL's host {host!r} does not resolve.")
    return addresses
