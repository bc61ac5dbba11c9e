"""What a tenant's OS user may connect to: the host's firewall, per tenant user.

The sandbox shares the host's network (the control plane reaches the server on the loopback, the
server reaches its model provider), so without rules the agent reaches every service listening
there: PostgreSQL, Redis, other tenants' servers. Each tenant user gets a chain of its own
(`iptables`/`ip6tables`, matched on the packet's owner uid in OUTPUT), rebuilt at every start:

1. replies on connections made to it (the control plane talking to its server) pass: every TCP
   packet but a connection's opening SYN;
2. new connections to the endpoints it needs pass: its model providers (the `baseURL`s of its
   OpenCode config), a DNS resolver on the loopback, and what the operator lists in
   ``INDORCH_RUNTIME_NETWORK_ALLOW`` (``host:port,...``, e.g. a git server on the loopback);
3. every other new connection to the loopback (127.0.0.0/8, ::1) and to the networks the operator
   lists in ``INDORCH_RUNTIME_BLOCKED_NETWORKS`` (e.g. the private network the database is on)
   is refused.

Anything else (the internet: a hosted model provider, the npm registry OpenCode installs its
provider packages from) stays reachable. The rules follow the uid, so git and setup scripts run
as the tenant are held by them too.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from resources.settings import provider_base_url

ALLOW_VAR = "INDORCH_RUNTIME_NETWORK_ALLOW"
BLOCKED_VAR = "INDORCH_RUNTIME_BLOCKED_NETWORKS"
CHAIN_PREFIX = "INDORCH-T"
LOOPBACK = {4: "127.0.0.0/8", 6: "::1/128"}
TOOLS = {4: "iptables", 6: "ip6tables"}
RESOLV_CONF = Path("/etc/resolv.conf")


class NetworkRulesError(RuntimeError):
    """The firewall rules for a tenant's user could not be set."""


@dataclass(frozen=True)
class Endpoint:
    host: str  # an IP address
    port: int

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.host).version


def network_problem() -> str | None:
    """What keeps this host from confining tenants' network (None: nothing)."""
    for tool in TOOLS.values():
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian package iptables)"
    done = _run(["iptables", "-w", "-S", "OUTPUT"], check=False)
    if done.returncode != 0:
        return f"iptables does not work here: {done.stderr.strip()[:300]}"
    return None


def allowing(endpoint: str) -> str:
    """What the operator allows (`ALLOW_VAR`), with `endpoint` (`host:port`, e.g. a git server
    the platform serves on the loopback) added: the value to set before runtimes start."""
    return ",".join(filter(None, [os.environ.get(ALLOW_VAR), endpoint]))


def chain_for(uid: int) -> str:
    return f"{CHAIN_PREFIX}{uid}"


def confine(uid: int, allowed: Iterable[Endpoint], blocked: Iterable[str] = ()) -> None:
    """The tenant user's chain (re)built and hooked into OUTPUT, for IPv4 and IPv6."""
    allowed, blocked = list(allowed), list(blocked)
    chain = chain_for(uid)
    for family, tool in TOOLS.items():
        if _run([tool, "-w", "-n", "-L", chain], check=False).returncode != 0:
            _run([tool, "-w", "-N", chain])
        _run([tool, "-w", "-F", chain])
        # Every TCP packet but a connection's opening passes: the replies of its server to
        # the control plane (stateless: conntrack may take a SYN-ACK on a reused loopback port
        # for INVALID, and the control plane would lose its server); a tenant's process can
        # only open a connection with a SYN (no raw sockets in the host's network).
        rules = [["-p", "tcp", "!", "--syn", "-j", "ACCEPT"]]
        rules.append(["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"])
        for endpoint in allowed:
            if endpoint.family == family:
                port = str(endpoint.port)
                for protocol in ("tcp", "udp"):
                    rules.append(
                        ["-d", endpoint.host, "-p", protocol, "--dport", port, "-j", "ACCEPT"]
                    )
        for network in [LOOPBACK[family], *blocked]:
            if ipaddress.ip_network(network, strict=False).version == family:
                rules.append(["-d", network, "-j", "REJECT"])
        for rule in rules:
            _run([tool, "-w", "-A", chain, *rule])
        hook = ["OUTPUT", "-m", "owner", "--uid-owner", str(uid), "-j", chain]
        if _run([tool, "-w", "-C", *hook], check=False).returncode != 0:
            _run([tool, "-w", "-I", *hook[:1], "1", *hook[1:]])


def release(uid: int) -> None:
    """The tenant user's chain gone (a deleted tenant; tests' users)."""
    chain = chain_for(uid)
    for tool in TOOLS.values():
        if shutil.which(tool) is None:
            continue
        hook = ["OUTPUT", "-m", "owner", "--uid-owner", str(uid), "-j", chain]
        while _run([tool, "-w", "-D", *hook], check=False).returncode == 0:
            pass
        _run([tool, "-w", "-F", chain], check=False)
        _run([tool, "-w", "-X", chain], check=False)


def confined_uids() -> set[int]:
    """The uids that have a chain here (IPv4's list)."""
    if shutil.which("iptables") is None:
        return set()
    listed = _run(["iptables", "-w", "-S"], check=False).stdout.split()
    return {
        int(name.removeprefix(CHAIN_PREFIX))
        for name in listed
        if name.startswith(CHAIN_PREFIX) and name.removeprefix(CHAIN_PREFIX).isdigit()
    }


def needed_endpoints(config_json: str) -> list[Endpoint]:
    """The endpoints a runtime needs on the loopback or a blocked network: its providers'
    `baseURL`s, the platform's fine-tuning provider (``INDORCH_PROVIDER_BASE_URL``), the
    resolver of /etc/resolv.conf, and the operator's ``INDORCH_RUNTIME_NETWORK_ALLOW``. Hosts
    given by name are resolved now."""
    endpoints: list[Endpoint] = []
    # The platform's fine-tuning provider serves the tenant's promoted model: promotion adds it
    # to the runtime's config later, so it is allowed from the start.
    platform_provider = provider_base_url()
    for url in [*_provider_urls(json.loads(config_json)), *filter(None, [platform_provider])]:
        parts = urlsplit(url)
        if parts.hostname:
            default = 443 if parts.scheme == "https" else 80
            endpoints += _resolved(parts.hostname, parts.port or default)
    for line in _read(RESOLV_CONF).splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            endpoints += _resolved(fields[1], 53)
    for item in filter(None, (os.environ.get(ALLOW_VAR) or "").split(",")):
        host, _, port = item.strip().rpartition(":")
        if host and port.isdigit():
            endpoints += _resolved(host.strip("[]"), int(port))
    return endpoints


def blocked_networks() -> list[str]:
    """The operator's ``INDORCH_RUNTIME_BLOCKED_NETWORKS`` (CIDRs), checked."""
    networks = []
    for item in filter(None, (os.environ.get(BLOCKED_VAR) or "").split(",")):
        networks.append(str(ipaddress.ip_network(item.strip(), strict=False)))
    return networks


def _provider_urls(config: Any) -> Iterable[str]:
    providers = config.get("provider") if isinstance(config, dict) else None
    for provider in (providers or {}).values():
        options = provider.get("options") if isinstance(provider, dict) else None
        url = (options or {}).get("baseURL")
        if isinstance(url, str):
            yield url


def _resolved(host: str, port: int) -> list[Endpoint]:
    try:
        return [Endpoint(str(ipaddress.ip_address(host)), port)]
    except ValueError:
        pass
    import socket

    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    return [Endpoint(str(info[4][0]), port) for info in infos]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    if check and done.returncode != 0:
        raise NetworkRulesError(f"{' '.join(argv[:3])}: {done.stderr.strip()[:300]}")
    return done
