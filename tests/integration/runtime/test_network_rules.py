"""A tenant user's firewall rules, with real iptables, a real OS user and its real sandbox: the
loopback is refused unless an endpoint is allowed (`INDORCH_RUNTIME_NETWORK_ALLOW`), another
address of the host is reachable unless its network is blocked
(`INDORCH_RUNTIME_BLOCKED_NETWORKS`), and the control plane's own connections are untouched."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from resources.runtime_host import network_rules
from resources.runtime_host.sandbox import run_in_sandbox
from resources.runtime_host.tenant_users import TenantUser, ensure_tenant_user
from standins.opencode_config import provider_config
from tests.integration.runtime.conftest import unique_tenant

CONNECT = (
    "import socket, sys\n"
    "s = socket.socket(); s.settimeout(5)\n"
    "print('CONNECTED' if s.connect_ex((sys.argv[1], int(sys.argv[2]))) == 0 else 'REFUSED')\n"
)


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP server of the control plane's on every address of the host."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 0))
    server.listen(16)
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = server.accept()
                connection.close()
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        server.close()


def host_address() -> str:
    """An address of this host that is not the loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: only the route is chosen
        address = probe.getsockname()[0]
    assert not address.startswith("127."), address
    return address


def connect_as(user: TenantUser, host: str, port: int) -> str:
    done = run_in_sandbox(user, ["python3", "-c", CONNECT, host, str(port)], timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_loopback_refused_unless_allowed_other_networks_unless_blocked(
    runtime_root: Path, listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = ensure_tenant_user(unique_tenant("net"), runtime_root)
    address = host_address()
    try:
        assert connect_as(user, "127.0.0.1", listener) == "CONNECTED"  # no rules yet

        config = json.dumps(provider_config("http://127.0.0.1:1/v1"))  # another port
        network_rules.confine(user.uid, network_rules.needed_endpoints(config))
        assert connect_as(user, "127.0.0.1", listener) == "REFUSED"
        assert connect_as(user, address, listener) == "CONNECTED"  # not the loopback
        with socket.create_connection(("127.0.0.1", listener), timeout=5):
            pass  # the control plane's own connections are untouched

        monkeypatch.setenv(network_rules.ALLOW_VAR, f"127.0.0.1:{listener}")
        monkeypatch.setenv(network_rules.BLOCKED_VAR, f"{address}/32")
        network_rules.confine(
            user.uid, network_rules.needed_endpoints(config), network_rules.blocked_networks()
        )
        assert connect_as(user, "127.0.0.1", listener) == "CONNECTED"  # allowed by the operator
        assert connect_as(user, address, listener) == "REFUSED"  # blocked by the operator
    finally:
        network_rules.release(user.uid)
    assert connect_as(user, "127.0.0.1", listener) == "CONNECTED"  # released: no rules left
