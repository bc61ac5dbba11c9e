"""The SSRF guard judges every address a webhook's host resolves to, and a delivery gets the one
address it checked to connect to (`domain.webhook_address`), with a resolver the test controls."""

from __future__ import annotations

import ipaddress

import pytest

from domain.webhook_address import (
    Address,
    UnsafeWebhookUrl,
    webhook_destination,
    webhook_url_problem,
)

URL = "https://hooks.tenant.example/h?token=abc"


def resolving_to(*addresses: str):
    def resolve(host: str, port: int) -> list[Address]:
        if not addresses:
            raise OSError(f"{host} does not resolve")
        return [ipaddress.ip_address(a) for a in addresses]

    return resolve


@pytest.mark.parametrize(
    ("addresses", "problem"),
    [
        (("93.184.215.14",), None),  # public
        (("93.184.215.14", "10.0.0.5"), "loopback, private"),  # one private answer is enough
        (("::ffff:127.0.0.1",), "loopback, private"),  # loopback spelled as IPv6
        (("169.254.169.254",), "loopback, private"),  # the cloud metadata address
        ((), "does not resolve"),
    ],
)
def test_every_address_the_host_resolves_to_must_be_public(
    addresses: tuple[str, ...], problem: str | None
) -> None:
    found = webhook_url_problem(URL, allow_private=False, resolve=resolving_to(*addresses))
    assert found is None if problem is None else problem in found
    if problem is None:
        destination = webhook_destination(URL, False, resolving_to(*addresses))
        assert (destination.host, destination.port) == ("hooks.tenant.example", 443)
        assert str(destination.address) == addresses[0]
    else:
        with pytest.raises(UnsafeWebhookUrl, match=problem):
            webhook_destination(URL, False, resolving_to(*addresses))


def test_an_ipv4_mapped_answer_is_connected_to_as_ipv4() -> None:
    destination = webhook_destination(URL, False, resolving_to("::ffff:93.184.215.14"))
    assert destination.address == ipaddress.ip_address("93.184.215.14")


def test_with_private_addresses_allowed_registration_does_not_look_up_but_delivery_does() -> None:
    # A closed network: the name may resolve only where and when deliveries go.
    assert webhook_url_problem(URL, allow_private=True, resolve=resolving_to()) is None
    with pytest.raises(UnsafeWebhookUrl, match="does not resolve"):
        webhook_destination(URL, True, resolving_to())
    assert str(webhook_destination(URL, True, resolving_to("10.0.0.5")).address) == "10.0.0.5"


def test_the_problem_never_echoes_the_url() -> None:
    problem = webhook_url_problem(URL, allow_private=False, resolve=resolving_to("127.0.0.1"))
    assert problem is not None and "token" not in problem and "hooks" not in problem


def test_every_checked_address_is_kept_in_order_once_ipv4_mapped_ones_as_ipv4() -> None:
    destination = webhook_destination(
        URL, False, resolving_to("93.184.215.14", "::ffff:93.184.215.14", "2606:2800:21f::1")
    )
    assert [str(a) for a in destination.addresses] == ["93.184.215.14", "2606:2800:21f::1"]
    assert destination.address == ipaddress.ip_address("93.184.215.14")
