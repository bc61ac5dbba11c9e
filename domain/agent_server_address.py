"""Where an agent's server is and how the control plane may reach it.

`server_key` names the server behind a URL, host and port only: one listening socket is one
runtime, however the URL spells it (case, default port, trailing slash or dot, a path, the many
spellings of loopback), so the one-tenant-per-runtime rule cannot be dodged by writing it another
way. `server_url_problem` refuses what the control plane must not call: a scheme other than http(s),
credentials in the URL (they would be stored), plain http off this host unless the operator
allows it. `password_env_problem` keeps the Basic-auth password variable to one prefix, so a
registrant cannot have `DATABASE_URL` or a provider key sent to a URL of its choosing.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import SplitResult, unquote, urlsplit

SCHEMES = {"http": 80, "https": 443}
LOOPBACK = "loopback"
PASSWORD_ENV_PREFIX = "INDORCH_AGENT_PASSWORD_"
PASSWORD_ENV_NAME = re.compile(rf"{PASSWORD_ENV_PREFIX}[A-Z0-9_]+")
LEGACY_IPV4 = re.compile(r"[0-9a-fx.]+")  # 127.1, 0x7f.0.0.1, 2130706433: all 127.0.0.1


def password_env_problem(name: str) -> str | None:
    """Why `name` may not hold an agent's password, or None when it may."""
    if PASSWORD_ENV_NAME.fullmatch(name):
        return None
    return (
        f"{name!r} is not allowed: the password variable's name must start with "
        f"{PASSWORD_ENV_PREFIX} (upper-case letters, digits and _ after it)"
    )


def server_url_problem(url: str, allow_plain_http: bool) -> str | None:
    """Why the control plane must not call `url`, or None when it may. Never echoes the URL (it
    may carry credentials)."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in SCHEMES:
        return "the server URL must be http or https (e.g. https://host:4096)"
    if parts.username is not None or parts.password is not None:
        return "the server URL must not carry credentials: name a password variable instead"
    try:
        host = _canonical_host(parts)
        parts.port  # noqa: B018  (raises on a port that is not a number or out of range)
    except ValueError:
        return "the server URL has a malformed host or port"
    if not host:
        return "the server URL has no host"
    if parts.scheme.lower() == "http" and host != LOOPBACK and not allow_plain_http:
        return (
            "plain http is allowed only to this host (127.0.0.1, localhost): use https, or "
            "the operator sets INDORCH_ALLOW_PLAIN_HTTP_AGENTS=1"
        )
    return None


def server_key(url: str) -> str:
    """`host:port` of the server `url` reaches, loopback spellings as one host (`ValueError` on
    a URL `server_url_problem` refuses for its host or port)."""
    parts = urlsplit(url.strip())
    port = parts.port or SCHEMES.get(parts.scheme.lower(), 0)
    host = _canonical_host(parts)
    if not host:
        raise ValueError("the server URL has no host")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _canonical_host(parts: SplitResult) -> str:
    host = unquote(parts.hostname or "").strip().rstrip(".").lower()
    if not host:
        return ""
    if host == "localhost" or host.endswith(".localhost"):
        return LOOPBACK
    address = _ip_address(host)
    if address is None:
        return host.encode("idna").decode("ascii")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback or address.is_unspecified:  # 0.0.0.0 and :: reach this host too
        return LOOPBACK
    return address.compressed


def _ip_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if LEGACY_IPV4.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None
