"""An agent's server address: the one key a runtime is claimed by (so spelling cannot dodge the
one-tenant rule), the schemes allowed, and which variables may hold its password."""

from __future__ import annotations

import pytest

from domain.agent_server_address import (
    PASSWORD_ENV_PREFIX,
    password_env_problem,
    server_key,
    server_url_problem,
)

SAME_LOOPBACK_SERVER = [
    "http://127.0.0.1:4096",
    "http://127.0.0.1:4096/",
    "HTTP://LOCALHOST:4096",
    "http://localhost.:4096/some/path?x=1#f",
    "https://127.0.0.1:4096",
    "http://[::1]:4096",
    "http://[::ffff:127.0.0.1]:4096",
    "http://0.0.0.0:4096",
    "http://127.1:4096",
    "http://0x7f.0.0.1:4096",
    "http://2130706433:4096",
    "http://127.0.0.2:4096",
    "http://127.0.0.%31:4096",
]


@pytest.mark.parametrize("spelling", SAME_LOOPBACK_SERVER)
def test_every_spelling_of_one_loopback_server_has_one_key(spelling: str) -> None:
    assert server_key(spelling) == server_key("http://127.0.0.1:4096")


def test_default_ports_case_and_trailing_dots_do_not_change_the_key() -> None:
    assert server_key("http://Agents.Example.COM") == server_key("http://agents.example.com:80/")
    assert server_key("https://agents.example.com.") == server_key("https://agents.example.com:443")
    assert server_key("http://[2001:DB8::1]:80") == server_key("http://[2001:db8:0::1]")


def test_other_servers_have_other_keys() -> None:
    assert server_key("http://127.0.0.1:4096") != server_key("http://127.0.0.1:4097")
    assert server_key("http://a.example.com") != server_key("http://b.example.com")
    assert server_key("http://a.example.com") != server_key("https://a.example.com")  # 80 / 443


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://127.0.0.1:4096", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("127.0.0.1:4096", "http or https"),
        ("http://", "no host"),
        ("http://127.0.0.1:99999", "port"),
        ("http://user:pw@127.0.0.1:4096", "credentials"),
        ("http://agents.example.com:4096", "plain http"),
        ("http://10.0.0.5:4096", "plain http"),
    ],
)
def test_urls_that_are_refused_say_why(url: str, why: str) -> None:
    problem = server_url_problem(url, allow_plain_http=False)
    assert problem is not None and why in problem
    assert "pw" not in problem  # credentials in a URL are never echoed


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:4096", "http://localhost:4096", "http://[::1]:1", "https://x.example.com"],
)
def test_https_anywhere_and_plain_http_to_loopback_are_allowed(url: str) -> None:
    assert server_url_problem(url, allow_plain_http=False) is None


def test_the_operator_may_allow_plain_http_to_other_hosts() -> None:
    assert server_url_problem("http://10.0.0.5:4096", allow_plain_http=True) is None
    assert server_url_problem("ftp://10.0.0.5:4096", allow_plain_http=True) is not None


@pytest.mark.parametrize(
    "name",
    [
        "DATABASE_URL",
        "OPENAI_API_KEY",
        "OPENCODE_SERVER_PASSWORD",
        "INDORCH_SECRET_KEY",
        "INDORCH_AGENT_PASSWORD_",  # the prefix alone names nothing
        "indorch_agent_password_x",
        "INDORCH_AGENT_PASSWORD_A-B",
        "XINDORCH_AGENT_PASSWORD_A",
        "INDORCH_AGENT_PASSWORD_A\n",
    ],
)
def test_only_variables_with_the_agent_password_prefix_may_hold_a_password(name: str) -> None:
    problem = password_env_problem(name)
    assert problem is not None and PASSWORD_ENV_PREFIX in problem


def test_a_prefixed_variable_may_hold_a_password() -> None:
    assert password_env_problem("INDORCH_AGENT_PASSWORD_ACME_1") is None
