"""Where webhooks may be sent: the guard against server-side request forgery (SSRF).

A tenant chooses the URL and the platform calls it, so a URL that reaches the platform's own
network (loopback, private ranges, link-local such as the cloud metadata address, multicast,
reserved or unspecified addresses) would let a tenant probe or call what only the platform can
reach. Every address the host resolves to must be public, unless the operator allows private
ones (`INDORCH_ALLOW_PRIVATE_WEBHOOKS=1`, for a closed deployment or tests). The host is
resolved by the system, so every spelling of an address (`127.1`, `0x7f000001`, `[::ffff:
127.0.0.1]`, a name that resolves to 10.0.0.5) is judged by what it reaches. The check runs
at registration and again at every delivery, where it gives the address to connect to
(`webhook_destination`): the connection goes to the address checked, never to a second look-up
that a name re-pointed meanwhile (DNS rebinding) could answer with 127.0.0.1. Redirects are
never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

SCHEMES = ("http", "https")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


Resolver = Callable[[str, int], list[Address]]


class UnsafeWebhookUrl(Exception):
    """Why the platform must not send to a URL (never the URL: it may carry a token)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class WebhookDestination:
    """Where one delivery goes: the URL's host (for the Host header and TLS) and port, and the
    addresses it resolved to, every one checked, in the resolver's order: the connection uses
    them (the next when one refuses it), never a second look-up."""

    host: str
    port: int
    addresses: tuple[Address, ...]

    @property
    def address(self) -> Address:
        """The first address to try."""
        return self.addresses[0]


def webhook_url_problem(
    url: str, allow_private: bool, resolve: Resolver | None = None
) -> str | None:
    """Why the platform must not send webhooks to `url`, or None when it may (at registration;
    with private addresses allowed the host is not looked up, it may resolve only later)."""
    try:
        host, port = _host_and_port(url)
        if not allow_private:
            _checked_addresses(host, port, allow_private, resolve or resolved_addresses)
    except UnsafeWebhookUrl as unsafe:
        return unsafe.problem
    return None


def webhook_destination(
    url: str, allow_private: bool, resolve: Resolver | None = None
) -> WebhookDestination:
    """The checked addresses to connect to for `url` now (one look-up); `UnsafeWebhookUrl` when
    the URL or any address its host resolves to is refused."""
    host, port = _host_and_port(url)
    addresses = _checked_addresses(host, port, allow_private, resolve or resolved_addresses)
    unmapped = [
        address.ipv4_mapped
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None
        else address
        for address in addresses
    ]
    return WebhookDestination(host=host, port=port, addresses=tuple(dict.fromkeys(unmapped)))


def _host_and_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in SCHEMES:
        raise UnsafeWebhookUrl("the webhook URL must be http or https")
    if parts.username is not None or parts.password is not None:
        raise UnsafeWebhookUrl("the webhook URL must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        raise UnsafeWebhookUrl("the webhook URL has a malformed port") from None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeWebhookUrl("the webhook URL has no host")
    return host, port


def _checked_addresses(
    host: str, port: int, allow_private: bool, resolve: Resolver
) -> list[Address]:
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError):
        addresses = []
    if not addresses:
        raise UnsafeWebhookUrl("the webhook URL's host does not resolve")
    if not allow_private and any(not _public(address) for address in addresses):
        raise UnsafeWebhookUrl(
            "the webhook URL reaches a loopback, private, link-local or reserved address; "
            "the operator may allow those (INDORCH_ALLOW_PRIVATE_WEBHOOKS=1)"
        )
    return addresses


def resolved_addresses(host: str, port: int) -> list[Address]:
    """Every address the system resolves `host` to."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def _public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast
