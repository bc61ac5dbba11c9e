"""Repository records, refs, branches and who answers permission requests: pure rules."""

from __future__ import annotations

import pytest

from domain.code_repository import CodeRepository, ref_problem, session_branch
from domain.errors import InvalidInput
from domain.session import Session
from domain.session_permissions import permission_policy, session_rules


@pytest.mark.parametrize("ref", ["main", "feature/x-1", "v1.2.3", "a1b2c3d", "release/2026.12"])
def test_refs_git_would_take(ref: str) -> None:
    assert ref_problem(ref) is None


@pytest.mark.parametrize(
    "ref", ["", "-x", "a..b", "a b", "x.lock", "a~1", "a^", "b:c", "x/", "@{u"]
)
def test_refs_git_would_refuse(ref: str) -> None:
    assert ref_problem(ref) is not None
    with pytest.raises(InvalidInput, match="ref"):
        Session(tenant_id="acme", title="t", initial_prompt="p", repository="app", ref=ref)


def test_a_session_works_on_its_own_branch() -> None:
    assert session_branch("IND-1A2B") == "indorch/IND-1A2B"


def test_a_setup_script_of_blanks_is_none_and_a_secret_name_is_a_name() -> None:
    repo = CodeRepository(tenant_id="acme", name="app", url="file:///srv/app.git", setup_script=" ")
    assert repo.setup_script is None
    with pytest.raises(InvalidInput, match="credentials_secret"):
        CodeRepository(
            tenant_id="acme", name="app", url="file:///srv/a.git", credentials_secret="a b"
        )


@pytest.mark.parametrize(
    ("submitted", "profile", "expected"),
    [
        (None, None, "wait"),
        ("reject", None, "reject"),
        ("allow", None, "wait"),  # stored before the rule: never widened
        ("reject", "allow", "allow"),
        (None, "reject", "wait"),
    ],
)
def test_who_answers_permission_requests(
    submitted: str | None, profile: str | None, expected: str
) -> None:
    assert permission_policy(submitted, profile) == expected


def test_every_session_denies_other_directories() -> None:
    rules = session_rules()
    assert {"permission": "external_directory", "pattern": "*", "action": "deny"} in rules
    rules.clear()
    assert session_rules()  # a copy each time
