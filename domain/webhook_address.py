"""Where webhooks may be sent: the guard against server-side request forgery (SSRF).

A tenant chooses the URL and the platform calls it, so a URL that reaches the platform's own
network (loopback, private ranges, link-local such as the cloud metadata address, multicast,
reserved or unspecified addresses) would let a tenant probe or call what only the platform can
reach. Every address the host resolves to must be public, unless the operator allows private
ones (`INDORCH_ALLOW_PRIVATE_WEBHOOKS=1`, for a closed deployment or tests). The host is
resolved by the system, so every spelling of an address (`127.1`, `0x7f000001`, `[::ffff:
127.0.0.1]`, a name that resolves to 10.0.0.5) is judged by what it reaches. The check runs
at registration and again before every delivery (a name may be re-pointed since); redirects are
never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

SCHEMES = ("http", "https")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def webhook_url_problem(url: str, allow_private: bool) -> str | None:
    """Why the platform must not send webhooks to `url`, or None when it may (never echoes the
    URL: it may carry a token in its path or query)."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in SCHEMES:
        return "the webhook URL must be http or https"
    if parts.username is not None or parts.password is not None:
        return "the webhook URL must not carry credentials"
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        return "the webhook URL has a malformed port"
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return "the webhook URL has no host"
    if allow_private:
        return None
    try:
        addresses = resolved_addresses(host, port)
    except OSError:
        return "the webhook URL's host does not resolve"
    if not addresses:
        return "the webhook URL's host does not resolve"
    if any(not _public(address) for address in addresses):
        return (
            "the webhook URL reaches a loopback, private, link-local or reserved address; "
            "the operator may allow those (INDORCH_ALLOW_PRIVATE_WEBHOOKS=1)"
        )
    return None


def resolved_addresses(host: str, port: int) -> list[Address]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def _public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast
