"""Webhooks through the API: registered (secret once), deliveries signed and verified by a real
receiver, a failing receiver retried with backoff until it succeeds, deliveries listed, another
tenant's webhook 404, and the SSRF guard (loopback, private, metadata addresses refused unless
the operator allows them), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.app import create_app
from api.services import Services
from domain.caller import Caller
from domain.clock import utcnow
from domain.fine_tuning import FineTuningJob, FineTuningStatus
from domain.tenant import Role
from domain.webhook_address import Address
from resources.database import Database, tenant_scope, unit_of_work
from resources.database_resource import DatabaseResource
from resources.secret_box import SECRET_KEY_VAR
from resources.settings import ALLOW_PRIVATE_WEBHOOKS_VAR
from sensors.webhooks import webhook_delivery_sensor
from services.factory import ServiceFactory
from services.session_service import SubmitSession
from services.webhooks import Webhooks
from standins.background_server import BackgroundServer
from tests.integration.api.conftest import OPERATOR, ApiTenant, _new_tenant

WEBHOOKS = "/api/v1/webhooks"


class Receiver:
    """A webhook receiver: answers `fail` 500s first, then 200; keeps what it got."""

    def __init__(self) -> None:
        self.fail = 0
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])

    async def _hook(self, request: Request) -> JSONResponse:
        self.received.append((dict(request.headers), await request.body()))
        if self.fail > 0:
            self.fail -= 1
            return JSONResponse({"error": "down"}, status_code=500)
        return JSONResponse({"ok": True})


def verified(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's own check, written from the README, not with the platform's code."""
    timestamp = headers["x-indorch-timestamp"]
    if abs(time.time() - int(timestamp)) > 300:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest("sha256=" + expected.hexdigest(), headers["x-indorch-signature"])


@pytest.fixture(autouse=True)
def secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_KEY_VAR, Fernet.generate_key().decode())


@pytest.fixture
def allow_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_PRIVATE_WEBHOOKS_VAR, "1")


@pytest.fixture
def receiver(allow_loopback: None) -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    with BackgroundServer(receiver.app) as server:
        yield receiver, f"{server.url}/hook"


def _create(client: TestClient, tenant: ApiTenant, url: str, **extra: Any):
    return client.post(WEBHOOKS, headers=tenant.headers(Role.LEAD), json={"url": url, **extra})


def _cancelled_session(wiring: Services, tenant: ApiTenant) -> str:
    sessions = wiring.factory.sessions()
    session = sessions.submit(OPERATOR, tenant.slug, SubmitSession(title="t", prompt="p"))
    sessions.cancel(OPERATOR, tenant.slug, session.id)
    return session.id


def _deliveries(client: TestClient, tenant: ApiTenant, webhook_id: str) -> list[dict]:
    answer = client.get(f"{WEBHOOKS}/{webhook_id}/deliveries", headers=tenant.headers(Role.LEAD))
    assert answer.status_code == 200, answer.text
    return answer.json()["deliveries"]


@pytest.fixture(params=["sqlite", "postgres"])
def own_wiring(request: pytest.FixtureRequest, migrated_sqlite_url: str) -> Iterator[Services]:
    """The API's wiring on a database of this test's own: the sensor attempts every tenant's due
    deliveries, and the run's shared database holds those the earlier tests left due."""
    if request.param == "sqlite":
        url = migrated_sqlite_url
    else:
        url = request.getfixturevalue("migrated_postgres_copy")
    database = Database(url)
    yield Services(database, ServiceFactory(database))
    database.dispose()


@pytest.fixture
def own_client(own_wiring: Services) -> Iterator[TestClient]:
    with TestClient(create_app(own_wiring)) as client:
        yield client


def test_a_receiver_verifies_the_signed_delivery_sent_by_the_sensor(
    own_client: TestClient, own_wiring: Services, receiver
) -> None:
    client, wiring = own_client, own_wiring
    tenant_a = _new_tenant(wiring.factory)
    sink, url = receiver
    created = _create(client, tenant_a, url, events=["session.cancelled"])
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    webhook_id = created.json()["webhook"]["id"]
    session_id = _cancelled_session(wiring, tenant_a)

    resource = DatabaseResource(url=wiring.database.url.render_as_string(hide_password=False))
    with dg.build_sensor_context(resources={"database": resource}) as context:
        webhook_delivery_sensor(context)

    ((headers, body),) = sink.received
    assert verified(secret, headers, body)
    assert not verified(secret, headers, body + b" ")  # a changed body fails the check
    event = json.loads(body)
    assert event["type"] == "session.cancelled"
    assert event["tenant_id"] == tenant_a.slug
    assert event["data"]["session_id"] == session_id
    assert event["data"]["new_status"] == "CANCELLED"
    assert headers["x-indorch-event"] == "session.cancelled"
    assert headers["x-indorch-delivery"] == event["id"]
    (delivery,) = _deliveries(client, tenant_a, webhook_id)
    assert delivery["id"] == event["id"]
    assert (delivery["status"], delivery["attempts"]) == ("DELIVERED", 1)
    assert delivery["history"][0]["status_code"] == 200


def test_a_failing_receiver_is_retried_with_backoff_then_succeeds(
    client: TestClient, wiring: Services, tenant_a: ApiTenant, receiver
) -> None:
    sink, url = receiver
    sink.fail = 2
    created = _create(client, tenant_a, url)
    webhook_id, secret = created.json()["webhook"]["id"], created.json()["secret"]
    _cancelled_session(wiring, tenant_a)
    start = utcnow()

    def deliver_at(seconds: float) -> list:
        at = start + timedelta(seconds=seconds)
        return Webhooks(wiring.database, clock=lambda: at).deliver_due(OPERATOR, tenant_a.slug)

    assert [r.status for r in deliver_at(0)] == ["PENDING"]  # 500: tried again later
    assert deliver_at(5) == []  # not before its pause (10 s after the first failure)
    assert [r.status for r in deliver_at(11)] == ["PENDING"]  # 500 again: 20 s pause now
    assert deliver_at(25) == []
    assert [r.status for r in deliver_at(32)] == ["DELIVERED"]
    assert deliver_at(3600) == []

    assert len(sink.received) == 3
    assert all(verified(secret, headers, body) for headers, body in sink.received)
    assert len({headers["x-indorch-delivery"] for headers, _ in sink.received}) == 1
    (delivery,) = _deliveries(client, tenant_a, webhook_id)
    assert (delivery["status"], delivery["attempts"]) == ("DELIVERED", 3)
    assert [a["status_code"] for a in delivery["history"]] == [500, 500, 200]


def test_a_receiver_that_never_succeeds_ends_failed(
    client: TestClient, wiring: Services, tenant_a: ApiTenant, receiver
) -> None:
    sink, url = receiver
    sink.fail = 100
    webhook_id = _create(client, tenant_a, url).json()["webhook"]["id"]
    _cancelled_session(wiring, tenant_a)
    for hour in range(10):
        at = utcnow() + timedelta(hours=hour)
        Webhooks(wiring.database, clock=lambda at=at: at).deliver_due(OPERATOR, tenant_a.slug)
    (delivery,) = _deliveries(client, tenant_a, webhook_id)
    assert (delivery["status"], delivery["attempts"]) == ("FAILED", 6)
    assert len(sink.received) == 6


def test_webhooks_are_listed_and_deleted_and_the_secret_is_shown_once_and_sealed(
    client: TestClient, wiring: Services, tenant_a: ApiTenant, receiver
) -> None:
    _, url = receiver
    created = _create(client, tenant_a, url, description="ci")
    secret, webhook_id = created.json()["secret"], created.json()["webhook"]["id"]
    listed = client.get(WEBHOOKS, headers=tenant_a.headers(Role.LEAD))
    assert [w["id"] for w in listed.json()["webhooks"]] == [webhook_id]
    assert secret not in listed.text
    assert listed.json()["webhooks"][0]["events"] == ["fine_tuning.*", "session.*"]
    with tenant_scope(tenant_a.slug), unit_of_work(wiring.database) as uow:
        stored = uow.session.execute(text("SELECT secret_sealed FROM webhook_endpoints")).scalar()
    assert stored and secret not in stored
    deleted = client.delete(f"{WEBHOOKS}/{webhook_id}", headers=tenant_a.headers(Role.LEAD))
    assert deleted.status_code == 204
    assert client.get(WEBHOOKS, headers=tenant_a.headers(Role.LEAD)).json() == {"webhooks": []}


def test_another_tenants_webhook_answers_404_and_roles_are_enforced(
    client: TestClient, wiring: Services, tenant_a: ApiTenant, tenant_b: ApiTenant, receiver
) -> None:
    _, url = receiver
    webhook_id = _create(client, tenant_a, url).json()["webhook"]["id"]
    for method, path in [
        ("GET", f"{WEBHOOKS}/{webhook_id}/deliveries"),
        ("DELETE", f"{WEBHOOKS}/{webhook_id}"),
    ]:
        answer = client.request(method, path, headers=tenant_b.headers(Role.ADMIN))
        assert answer.status_code == 404, (method, answer.text)
    assert client.get(WEBHOOKS, headers=tenant_b.headers(Role.ADMIN)).json() == {"webhooks": []}
    # Tenant B's session changes are not delivered to A's webhook.
    _cancelled_session(wiring, tenant_b)
    assert _deliveries(client, tenant_a, webhook_id) == []
    for role in (Role.MEMBER, Role.VIEWER):
        assert _create_as(client, tenant_a, url, role).status_code == 403
        listed = client.get(WEBHOOKS, headers=tenant_a.headers(role))
        assert listed.status_code == 403
    assert client.get(WEBHOOKS).status_code in (400, 401)


def _create_as(client: TestClient, tenant: ApiTenant, url: str, role: Role):
    return client.post(WEBHOOKS, headers=tenant.headers(role), json={"url": url})


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://127.1/hook",
        "http://2130706433/hook",  # 127.0.0.1 as one number
        "http://0x7f000001/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://169.254.169.254/latest/meta-data",  # cloud metadata
        "http://10.0.0.5/hook",
        "http://172.16.3.4/hook",
        "http://192.168.1.10/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[fd00::1]/hook",
        "ftp://203.0.113.7/hook",
        "file:///etc/passwd",
        "http://user:secret@93.184.215.14/hook",
    ],
)
def test_webhook_urls_to_the_platforms_network_are_refused(
    client: TestClient, tenant_a: ApiTenant, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ALLOW_PRIVATE_WEBHOOKS_VAR, raising=False)
    answer = _create(client, tenant_a, url)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["details"]["field"] == "url"
    assert "secret@" not in answer.text


def test_a_public_address_is_accepted_and_unknown_events_are_refused(
    client: TestClient, tenant_a: ApiTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ALLOW_PRIVATE_WEBHOOKS_VAR, raising=False)
    assert _create(client, tenant_a, "https://93.184.215.14/hook").status_code == 201
    bad = _create(client, tenant_a, "https://93.184.215.14/hook", events=["session.exploded!"])
    assert bad.status_code == 422
    extra = client.post(
        WEBHOOKS,
        headers=tenant_a.headers(Role.LEAD),
        json={"url": "https://93.184.215.14/hook", "surprise": 1},
    )
    assert extra.status_code == 422


def test_the_address_is_checked_again_before_each_delivery(
    client: TestClient,
    wiring: Services,
    tenant_a: ApiTenant,
    receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink, url = receiver
    webhook_id = _create(client, tenant_a, url).json()["webhook"]["id"]
    _cancelled_session(wiring, tenant_a)
    monkeypatch.delenv(ALLOW_PRIVATE_WEBHOOKS_VAR)  # the operator withdrew the allowance
    Webhooks(wiring.database).deliver_due(OPERATOR, tenant_a.slug)
    assert sink.received == []
    (delivery,) = _deliveries(client, tenant_a, webhook_id)
    assert delivery["status"] == "PENDING"
    assert delivery["last_error"].startswith("not sent: the webhook URL reaches a loopback")


# A delivery runner in a process of its own (killed by the test mid-attempt), given the database
# URL and the tenant: it imports what a runner needs only (this module's imports cost ~2.5 CPU-s).
DELIVER_IN_A_PROCESS = """
import sys
from domain.caller import Caller
from resources.database import Database
from services.webhooks import Webhooks
Webhooks(Database(sys.argv[1])).deliver_due(Caller.operator(), sys.argv[2])
"""


def test_a_runner_killed_mid_delivery_loses_nothing(
    client: TestClient, wiring: Services, tenant_a: ApiTenant, allow_loopback: None
) -> None:
    got_it = threading.Event()
    release = threading.Event()
    received: list[bytes] = []

    async def hook(request: Request) -> JSONResponse:
        received.append(await request.body())
        if len(received) == 1:  # the first attempt: hold it until its runner is dead
            got_it.set()
            await asyncio.get_running_loop().run_in_executor(None, release.wait, 30)
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    with BackgroundServer(app) as server:
        webhook_id = _create(client, tenant_a, f"{server.url}/hook").json()["webhook"]["id"]
        _cancelled_session(wiring, tenant_a)
        url = wiring.database.url.render_as_string(hide_password=False)
        runner = subprocess.Popen([sys.executable, "-c", DELIVER_IN_A_PROCESS, url, tenant_a.slug])
        try:
            assert got_it.wait(60), "the runner never reached the receiver"
        finally:
            runner.kill()
            runner.wait(10)
            release.set()
        (taken,) = _deliveries(client, tenant_a, webhook_id)
        assert (taken["status"], taken["attempts"]) == ("PENDING", 0)  # not lost, not counted
        assert Webhooks(wiring.database).deliver_due(OPERATOR, tenant_a.slug) == []  # still held
        later = utcnow() + timedelta(minutes=5)
        reports = Webhooks(wiring.database, clock=lambda: later).deliver_due(
            OPERATOR, tenant_a.slug
        )
    assert [r.status for r in reports] == ["DELIVERED"]
    assert len(received) == 2 and json.loads(received[0]) == json.loads(received[1])


def test_fine_tuning_state_changes_are_delivered_to_the_webhooks_that_want_them(
    client: TestClient, wiring: Services, tenant_a: ApiTenant, receiver
) -> None:
    sink, url = receiver
    tuning = _create(client, tenant_a, url, events=["fine_tuning.*"]).json()["webhook"]["id"]
    sessions_only = _create(client, tenant_a, url, events=["session.*"]).json()["webhook"]["id"]
    with tenant_scope(tenant_a.slug), unit_of_work(wiring.database) as uow:
        job = uow.fine_tuning_jobs.add(FineTuningJob(tenant_id=tenant_a.slug, base_model="q/c"))
        uow.fine_tuning_jobs.save_transition(job, job.transition_to(FineTuningStatus.QUEUED))

    Webhooks(wiring.database).deliver_due(OPERATOR, tenant_a.slug)

    ((_, body),) = sink.received
    event = json.loads(body)
    assert event["type"] == "fine_tuning.queued"
    assert event["data"]["fine_tuning_id"] == job.id
    assert [d["status"] for d in _deliveries(client, tenant_a, tuning)] == ["DELIVERED"]
    assert _deliveries(client, tenant_a, sessions_only) == []


def test_a_delivery_whose_secret_cannot_be_opened_waits_and_the_others_go(
    client: TestClient,
    wiring: Services,
    tenant_a: ApiTenant,
    receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink, url = receiver
    old = _create(client, tenant_a, url).json()["webhook"]["id"]
    monkeypatch.setenv(SECRET_KEY_VAR, Fernet.generate_key().decode())  # the old key is gone
    new = _create(client, tenant_a, url).json()["webhook"]["id"]
    _cancelled_session(wiring, tenant_a)

    Webhooks(wiring.database).deliver_due(OPERATOR, tenant_a.slug)

    assert len(sink.received) == 1
    assert _deliveries(client, tenant_a, new)[0]["status"] == "DELIVERED"
    (waiting,) = _deliveries(client, tenant_a, old)
    assert waiting["status"] == "PENDING"
    assert waiting["last_error"].startswith("not sent: ")


class Dns:
    """The resolver a test controls: what each name resolves to now (re-pointable)."""

    def __init__(self, **names: str) -> None:
        self.names = {name.replace("_", "."): address for name, address in names.items()}

    def __call__(self, host: str, port: int) -> list[Address]:
        if host not in self.names:
            raise OSError(f"{host} does not resolve")
        return [ipaddress.ip_address(address) for address in self.names[host].split(",")]


TENANT_HOST = "hooks.tenant.example"


def test_a_name_re_pointed_to_loopback_after_registration_is_refused_at_delivery(
    client: TestClient,
    wiring: Services,
    tenant_a: ApiTenant,
    receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding: public when registered, 127.0.0.1 when the delivery goes."""
    sink, url = receiver
    monkeypatch.delenv(ALLOW_PRIVATE_WEBHOOKS_VAR)
    dns = Dns(hooks_tenant_example="93.184.215.14")
    webhooks = Webhooks(wiring.database, resolve=dns)
    port = httpx.URL(url).port
    lead = Caller.for_tenant(tenant_a.slug, Role.LEAD)
    endpoint, _ = webhooks.create(lead, tenant_a.slug, f"http://{TENANT_HOST}:{port}/hook")
    _cancelled_session(wiring, tenant_a)

    dns.names[TENANT_HOST] = "127.0.0.1"  # the tenant re-points its name at the platform
    [report] = webhooks.deliver_due(OPERATOR, tenant_a.slug)

    assert sink.received == []
    assert (report.status, report.status_code) == ("PENDING", None)
    (delivery,) = _deliveries(client, tenant_a, endpoint.id)
    assert delivery["last_error"].startswith("not sent: the webhook URL reaches a loopback")
    assert delivery["history"][0]["error"] == delivery["last_error"]


def test_a_delivery_connects_to_the_address_it_checked_and_names_the_host_it_was_given(
    client: TestClient, wiring: Services, tenant_a: ApiTenant, receiver
) -> None:
    """No second look-up between the check and the connection: the name is known only to the
    test's resolver, so the receiver is reached only through the address the check resolved."""
    sink, url = receiver  # the operator allows loopback here: a closed network
    webhooks = Webhooks(wiring.database, resolve=Dns(hooks_tenant_example="127.0.0.1"))
    port = httpx.URL(url).port
    lead = Caller.for_tenant(tenant_a.slug, Role.LEAD)
    _, secret = webhooks.create(lead, tenant_a.slug, f"http://{TENANT_HOST}:{port}/hook")
    _cancelled_session(wiring, tenant_a)

    [report] = webhooks.deliver_due(OPERATOR, tenant_a.slug)

    assert (report.status, report.status_code) == ("DELIVERED", 200)
    ((headers, body),) = sink.received
    assert headers["host"] == f"{TENANT_HOST}:{port}"
    assert verified(secret, headers, body)


def test_an_address_that_refuses_the_connection_gives_way_to_the_next_checked_one(
    client: TestClient, wiring: Services, tenant_a: ApiTenant, receiver
) -> None:
    """A name with two addresses, the first unreachable (nothing listens on 127.0.0.2; the
    receiver is on 127.0.0.1): the delivery goes through the second, also checked; never
    through a new look-up."""
    sink, url = receiver
    webhooks = Webhooks(wiring.database, resolve=Dns(hooks_tenant_example="127.0.0.2,127.0.0.1"))
    port = httpx.URL(url).port
    lead = Caller.for_tenant(tenant_a.slug, Role.LEAD)
    _, secret = webhooks.create(lead, tenant_a.slug, f"http://{TENANT_HOST}:{port}/hook")
    _cancelled_session(wiring, tenant_a)

    [report] = webhooks.deliver_due(OPERATOR, tenant_a.slug)

    assert (report.status, report.status_code) == ("DELIVERED", 200)
    ((headers, body),) = sink.received
    assert headers["host"] == f"{TENANT_HOST}:{port}"
    assert verified(secret, headers, body)


def test_when_no_checked_address_answers_the_delivery_waits_for_its_retry(
    client: TestClient, wiring: Services, tenant_a: ApiTenant, receiver
) -> None:
    sink, url = receiver
    webhooks = Webhooks(wiring.database, resolve=Dns(hooks_tenant_example="127.0.0.2,127.0.0.3"))
    port = httpx.URL(url).port
    lead = Caller.for_tenant(tenant_a.slug, Role.LEAD)
    endpoint, _ = webhooks.create(lead, tenant_a.slug, f"http://{TENANT_HOST}:{port}/hook")
    _cancelled_session(wiring, tenant_a)

    [report] = webhooks.deliver_due(OPERATOR, tenant_a.slug)

    assert sink.received == []
    assert (report.status, report.status_code) == ("PENDING", None)
    (delivery,) = _deliveries(client, tenant_a, endpoint.id)
    assert delivery["last_error"] == "no answer (ConnectError)"


def _certificate_for(host: str, directory: Path) -> tuple[str, str]:
    """A self-signed certificate naming `host` only (not the address it is served on)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "receiver.crt", directory / "receiver.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)


def test_over_https_the_pinned_connection_checks_the_certificate_of_the_host_name(
    client: TestClient,
    wiring: Services,
    tenant_a: ApiTenant,
    allow_loopback: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Connected to the address, the TLS handshake still names the host (SNI) and the
    certificate is verified against it: a receiver whose certificate names only the host
    answers, as it would without the pinning."""
    cert_file, key_file = _certificate_for(TENANT_HOST, tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", cert_file)  # the receiver's certificate is trusted
    sink = Receiver()
    with BackgroundServer(sink.app, tls=(cert_file, key_file)) as server:
        webhooks = Webhooks(wiring.database, resolve=Dns(hooks_tenant_example="127.0.0.1"))
        lead = Caller.for_tenant(tenant_a.slug, Role.LEAD)
        url = f"https://{TENANT_HOST}:{server.port}/hook"
        endpoint, _ = webhooks.create(lead, tenant_a.slug, url)
        _cancelled_session(wiring, tenant_a)
        [report] = webhooks.deliver_due(OPERATOR, tenant_a.slug)
    assert (report.status, report.status_code) == ("DELIVERED", 200), _deliveries(
        client, tenant_a, endpoint.id
    )
    ((headers, _),) = sink.received
    assert headers["host"] == f"{TENANT_HOST}:{server.port}"
