"""Every rule of MISSION.md on a field holds at its edges, and a broken one is `InvalidInput`.

Sessions (title, description, prompt, duration, priority, type, model), tenants and users,
agents (capacity, URL, tier, circuit breaker), checkpoints, PERT estimates, model versions and
session metrics. One table per rule, one comment per case.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.agent import Agent, AgentPerformance, AgentTier, tier_for
from domain.checkpoint import MAX_CHECKPOINTS_KEPT
from domain.errors import InvalidInput
from domain.estimate import Complexity, Estimate, complexity_for
from domain.fine_tuning import FineTuningJob, next_model_version
from domain.session import Priority, Session, SessionStatus, SessionType
from domain.tenant import Role, Tenant, User

T0 = datetime(2025, 1, 2, 3, 0, 0, tzinfo=UTC)


def make_session(**overrides: Any) -> Session:
    fields: dict[str, Any] = {"tenant_id": "acme", "title": "fix the build", "initial_prompt": "go"}
    return Session(**(fields | overrides))


def make_agent(**overrides: Any) -> Agent:
    fields: dict[str, Any] = {
        "tenant_id": "acme",
        "name": "builder",
        "server_url": "http://127.0.0.1:4096",
    }
    return Agent(**(fields | overrides))


def refused(field: str) -> Any:
    return pytest.raises(InvalidInput, match=f"invalid {field}")


# --- sessions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "stored"),
    [
        # An ordinary title (the seed's validators refused this one).
        ("untitled", "untitled"),
        # Surrounding whitespace is trimmed.
        (" untitled ", "untitled"),
        # One character is enough.
        ("x", "x"),
        # 200 characters is the limit.
        ("t" * 200, "t" * 200),
        # Trimming happens before the length check.
        ("  " + "t" * 200 + "  ", "t" * 200),
    ],
)
def test_session_title_accepted(title: str, stored: str) -> None:
    assert make_session(title=title).title == stored


@pytest.mark.parametrize(
    "title",
    [
        # 201 characters is one too many.
        "t" * 201,
        # Empty.
        "",
        # Whitespace only is blank.
        "   ",
        "\t\n",
    ],
)
def test_session_title_refused(title: str) -> None:
    with refused("title"):
        make_session(title=title)


@pytest.mark.parametrize(
    ("description", "ok"),
    [
        # No description at all.
        ("", True),
        # 1,000 characters is the limit.
        ("d" * 1000, True),
        # 1,001 is refused.
        ("d" * 1001, False),
    ],
)
def test_session_description_length(description: str, ok: bool) -> None:
    if ok:
        assert make_session(description=description).description == description
    else:
        with refused("description"):
            make_session(description=description)


@pytest.mark.parametrize(
    ("prompt", "ok"),
    [
        # A one-character prompt.
        ("p", True),
        # 10,000 characters is the limit.
        ("p" * 10_000, True),
        # 10,001 is refused.
        ("p" * 10_001, False),
        # Empty.
        ("", False),
        # Whitespace only is blank.
        ("  \n ", False),
    ],
)
def test_session_prompt(prompt: str, ok: bool) -> None:
    if ok:
        assert make_session(initial_prompt=prompt).initial_prompt == prompt
    else:
        with refused("initial_prompt"):
            make_session(initial_prompt=prompt)


@pytest.mark.parametrize(
    ("seconds", "ok"),
    [
        # One second short of a minute.
        (59, False),
        # One minute is the shortest.
        (60, True),
        # One day is the longest.
        (86_400, True),
        # One second over a day.
        (86_401, False),
    ],
)
def test_session_max_duration(seconds: int, ok: bool) -> None:
    if ok:
        assert make_session(max_duration_seconds=seconds).max_duration_seconds == seconds
    else:
        with refused("max_duration_seconds"):
            make_session(max_duration_seconds=seconds)


def test_session_defaults() -> None:
    session = make_session()
    assert session.max_duration_seconds == 3_600
    assert session.priority is Priority.MEDIUM
    assert session.priority == 2
    assert session.session_type is SessionType.EXECUTION
    assert session.status is SessionStatus.PENDING
    assert (session.retry_count, session.max_retries) == (0, 3)
    assert session.id.startswith("IND-")


def test_priorities_are_ordered_critical_first() -> None:
    assert [(p.name, p.value) for p in sorted(Priority)] == [
        ("CRITICAL", 0),
        ("HIGH", 1),
        ("MEDIUM", 2),
        ("LOW", 3),
        ("DEFERRED", 4),
    ]
    assert Priority.CRITICAL < Priority.DEFERRED


def test_session_types_are_the_five_of_the_mission() -> None:
    assert {t.value for t in SessionType} == {
        "planning",
        "execution",
        "review",
        "debug",
        "integration",
    }


@pytest.mark.parametrize(
    ("model", "ok"),
    [
        # No model: the agent's default is used.
        (None, True),
        # provider/model.
        ("anthropic/claude-sonnet-4", True),
        # Model names may contain dots, colons and further slashes.
        ("openrouter/meta-llama/llama-3.1:8b", True),
        # No provider.
        ("gpt-4o", False),
        # Empty provider or model.
        ("/gpt-4o", False),
        ("openai/", False),
        # Spaces are not part of a model id.
        ("open ai/gpt 4o", False),
    ],
)
def test_session_model_is_provider_slash_model(model: str | None, ok: bool) -> None:
    if ok:
        assert make_session(model=model).model == model
    else:
        with refused("model"):
            make_session(model=model)


def test_an_invalid_assignment_is_refused_and_changes_nothing() -> None:
    session = make_session()
    with refused("title"):
        session.title = "   "
    assert session.title == "fix the build"


# --- tenants and users ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slug", "ok"),
    [
        # Lowercase letters.
        ("acme", True),
        # Letters, digits and dashes.
        ("a-1", True),
        # A single digit.
        ("0", True),
        # 63 characters is the longest.
        ("a" * 63, True),
        # Empty.
        ("", False),
        # Uppercase.
        ("Acme", False),
        # Underscore.
        ("a_b", False),
        # Space.
        ("a b", False),
        # Non-ASCII letter.
        ("é", False),
        # Trailing newline (a `$` that is not a full match would let it through).
        ("acme\n", False),
        # 64 characters is too long.
        ("a" * 64, False),
    ],
)
def test_tenant_slug(slug: str, ok: bool) -> None:
    if ok:
        assert Tenant(slug=slug, name="Acme").slug == slug
    else:
        with refused("slug"):
            Tenant(slug=slug, name="Acme")


def test_tenant_defaults() -> None:
    tenant = Tenant(slug="acme", name=" Acme Corp ")
    assert tenant.name == "Acme Corp"
    assert tenant.active is True
    assert tenant.max_concurrent_sessions == 10
    assert tenant.monthly_token_budget == 1_000_000


def test_tenant_name_must_not_be_blank() -> None:
    with refused("name"):
        Tenant(slug="acme", name="  ")


ROLE_ORDER = [Role.ADMIN, Role.LEAD, Role.MEMBER, Role.VIEWER]


@pytest.mark.parametrize("role", ROLE_ORDER)
@pytest.mark.parametrize("other", ROLE_ORDER)
def test_roles_are_ordered_admin_lead_member_viewer(role: Role, other: Role) -> None:
    # A role is at least another when it comes no later in ADMIN > LEAD > MEMBER > VIEWER.
    assert role.at_least(other) is (ROLE_ORDER.index(role) <= ROLE_ORDER.index(other))


@pytest.mark.parametrize(
    ("email", "stored"),
    [
        # An ordinary address.
        ("alice@example.com", "alice@example.com"),
        # Trimmed and lowercased.
        (" Alice@Example.COM ", "alice@example.com"),
        # Plus addressing and subdomains.
        ("bob+ci@mail.example.co.uk", "bob+ci@mail.example.co.uk"),
    ],
)
def test_user_email_accepted(email: str, stored: str) -> None:
    user = User(tenant_id="acme", email=email)
    assert user.email == stored
    assert user.role is Role.MEMBER
    assert user.id.startswith("USR-")


@pytest.mark.parametrize(
    "email",
    [
        # Empty.
        "",
        # No @.
        "alice",
        # No domain dot.
        "alice@example",
        # Two @.
        "a@b@example.com",
        # Space inside.
        "al ice@example.com",
    ],
)
def test_user_email_refused(email: str) -> None:
    with refused("email"):
        User(tenant_id="acme", email=email)


# --- agents -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capacity", "ok"),
    [
        # No capacity is no agent.
        (0, False),
        # One session at a time.
        (1, True),
        # 50 is the most.
        (50, True),
        # 51 is too many.
        (51, False),
    ],
)
def test_agent_capacity(capacity: int, ok: bool) -> None:
    if ok:
        assert make_agent(capacity=capacity).capacity == capacity
    else:
        with refused("capacity"):
            make_agent(capacity=capacity)


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        # A local OpenCode server.
        ("http://127.0.0.1:4096", "http://127.0.0.1:4096"),
        # HTTPS, trailing slash dropped.
        ("https://agents.example.com/", "https://agents.example.com"),
        # Surrounding whitespace trimmed.
        (" http://opencode:4096 ", "http://opencode:4096"),
    ],
)
def test_agent_server_url_accepted(url: str, stored: str) -> None:
    assert make_agent(server_url=url).server_url == stored


@pytest.mark.parametrize(
    "url",
    [
        # No scheme.
        "127.0.0.1:4096",
        # Not HTTP.
        "ftp://example.com",
        # A scheme lookalike.
        "httpx://example.com",
        # Empty.
        "",
    ],
)
def test_agent_server_url_refused(url: str) -> None:
    with refused("server_url"):
        make_agent(server_url=url)


def test_agent_ids_and_capabilities() -> None:
    agent = make_agent(capabilities=[" Python ", "python", "SQL", " "])
    assert agent.id.startswith("AGENT-")
    assert agent.capabilities == ["python", "sql"]
    assert agent.has_capabilities({"PYTHON"})
    assert not agent.has_capabilities({"python", "rust"})


@pytest.mark.parametrize(
    ("success", "quality", "tier"),
    [
        # Both bars met.
        (0.95, 0.9, AgentTier.ELITE),
        (1.0, 1.0, AgentTier.ELITE),
        # Elite success but not elite quality.
        (0.95, 0.8, AgentTier.ADVANCED),
        # Elite quality but not elite success.
        (0.94, 1.0, AgentTier.ADVANCED),
        # The ADVANCED bar.
        (0.85, 0.5, AgentTier.ADVANCED),
        # Just under it.
        (0.8499, 1.0, AgentTier.COMPETENT),
        # The COMPETENT bar.
        (0.70, 0.5, AgentTier.COMPETENT),
        # The TRAINEE bar.
        (0.50, 0.5, AgentTier.TRAINEE),
        # Below every bar.
        (0.49, 1.0, AgentTier.DEGRADED),
        (0.0, 0.0, AgentTier.DEGRADED),
    ],
)
def test_agent_tier_thresholds(success: float, quality: float, tier: AgentTier) -> None:
    assert tier_for(success, quality) is tier


@pytest.mark.parametrize(
    ("total", "succeeded", "open_"),
    [
        # A new agent gets the benefit of the doubt.
        (0, 0, False),
        # Four failures out of four: too few tasks to judge.
        (4, 0, False),
        # Five tasks, none succeeded: open.
        (5, 0, True),
        # 1/5 = 0.2 < 0.3: open.
        (5, 1, True),
        # 2/5 = 0.4: closed.
        (5, 2, False),
        # 3/10 = 0.3 exactly is not below the floor: closed.
        (10, 3, False),
        # 29/100 < 0.3: open.
        (100, 29, True),
    ],
)
def test_circuit_breaker(total: int, succeeded: int, open_: bool) -> None:
    performance = AgentPerformance(tasks_total=total, tasks_succeeded=succeeded)
    assert performance.breaker_open is open_


def test_agent_performance_tier_uses_its_success_rate() -> None:
    assert AgentPerformance(tasks_total=20, tasks_succeeded=19, quality=0.9).tier is AgentTier.ELITE
    assert AgentPerformance().tier is AgentTier.NEW  # no tasks yet: rate unknown, not 1.0


# --- checkpoints ------------------------------------------------------------------------------


def test_checkpoints_are_numbered_from_one() -> None:
    session = make_session()
    first = session.add_checkpoint({"step": "plan"}, at=T0)
    second = session.add_checkpoint({"step": "code"}, at=T0)
    assert (first.sequence, second.sequence) == (1, 2)
    assert first.data == {"step": "plan"}
    assert first.created_at == T0


def test_only_the_newest_hundred_checkpoints_are_kept() -> None:
    session = make_session()
    for step in range(105):
        session.add_checkpoint({"step": step})
    assert MAX_CHECKPOINTS_KEPT == 100
    assert [c.sequence for c in session.checkpoints] == list(range(6, 106))
    assert session.add_checkpoint({}).sequence == 106


# --- estimates --------------------------------------------------------------------------------


def test_pert_expected_and_sigma() -> None:
    estimate = Estimate(optimistic_hours=1, most_likely_hours=2, pessimistic_hours=9)
    assert estimate.expected_hours == pytest.approx(3.0)  # (1 + 8 + 9) / 6
    assert estimate.standard_deviation_hours == pytest.approx(8 / 6)
    assert estimate.complexity is Complexity.MODERATE


@pytest.mark.parametrize(
    ("hours", "band"),
    [
        # Zero work.
        (0, Complexity.TRIVIAL),
        # Just under a quarter hour.
        (0.2499, Complexity.TRIVIAL),
        # A quarter hour starts SIMPLE.
        (0.25, Complexity.SIMPLE),
        (0.999, Complexity.SIMPLE),
        # An hour starts MODERATE.
        (1, Complexity.MODERATE),
        (3.99, Complexity.MODERATE),
        # Four hours starts COMPLEX.
        (4, Complexity.COMPLEX),
        (7.99, Complexity.COMPLEX),
        # Eight hours and more is EXPERT.
        (8, Complexity.EXPERT),
        (1000, Complexity.EXPERT),
    ],
)
def test_complexity_bands(hours: float, band: Complexity) -> None:
    assert complexity_for(hours) is band


@pytest.mark.parametrize(
    "hours",
    [
        # Optimistic above most likely.
        (3, 2, 4),
        # Most likely above pessimistic.
        (1, 5, 4),
        # Negative hours.
        (-1, 0, 1),
    ],
)
def test_estimate_out_of_order_is_refused(hours: tuple[float, float, float]) -> None:
    optimistic, likely, pessimistic = hours
    with pytest.raises(InvalidInput):
        Estimate(
            optimistic_hours=optimistic, most_likely_hours=likely, pessimistic_hours=pessimistic
        )


# --- model versions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "bump", "following"),
    [
        # The first version.
        (None, "minor", "0.1.0"),
        # A minor bump resets the patch.
        ("0.1.3", "minor", "0.2.0"),
        # A patch bump.
        ("0.1.3", "patch", "0.1.4"),
        # A major bump resets the rest.
        ("1.9.9", "major", "2.0.0"),
        # Numbers compare as numbers, not text.
        ("1.9.0", "minor", "1.10.0"),
    ],
)
def test_next_model_version(current: str | None, bump: str, following: str) -> None:
    assert next_model_version(current, bump) == following


@pytest.mark.parametrize(
    ("current", "bump"),
    [
        # Not semver.
        ("v1", "minor"),
        # Leading zeros are not semver.
        ("01.2.3", "minor"),
        # Unknown bump.
        ("1.2.3", "huge"),
    ],
)
def test_next_model_version_refuses_nonsense(current: str, bump: str) -> None:
    with pytest.raises(ValueError):
        next_model_version(current, bump)


def test_a_job_model_version_must_be_semver() -> None:
    assert FineTuningJob(tenant_id="acme", base_model="m", model_version="1.2.3").model_version
    with refused("model_version"):
        FineTuningJob(tenant_id="acme", base_model="m", model_version="1.2")


# --- metrics ----------------------------------------------------------------------------------


def test_running_sets_started_at_once() -> None:
    session = make_session()
    session.transition_to(SessionStatus.RUNNING, at=T0)
    session.transition_to(SessionStatus.PAUSED, at=T0 + timedelta(minutes=1))
    session.transition_to(SessionStatus.RUNNING, at=T0 + timedelta(minutes=2))
    assert session.metrics.started_at == T0
    assert session.metrics.ended_at is None
    assert session.metrics.duration_seconds is None


@pytest.mark.parametrize(
    "end",
    [
        SessionStatus.COMPLETED,
        SessionStatus.PARTIALLY_COMPLETED,
        SessionStatus.FAILED,
        SessionStatus.TIMEOUT,
        SessionStatus.STOPPED,
        SessionStatus.ORPHANED,
    ],
)
def test_an_end_state_sets_ended_at_and_duration(end: SessionStatus) -> None:
    session = make_session()
    session.transition_to(SessionStatus.RUNNING, at=T0)
    session.transition_to(end, at=T0 + timedelta(seconds=90))
    assert session.metrics.started_at == T0
    assert session.metrics.ended_at == T0 + timedelta(seconds=90)
    assert session.metrics.duration_seconds == 90


def test_cancelled_before_running_has_zero_duration() -> None:
    session = make_session()
    session.transition_to(SessionStatus.CANCELLED, at=T0)
    assert session.metrics.ended_at == T0
    assert session.metrics.duration_seconds == 0


def test_usage_adds_up() -> None:
    metrics = make_session().metrics.add_usage(tokens_in=100, tokens_out=20, cost_usd=0.5)
    metrics = metrics.add_usage(tokens_in=1, api_calls=2)
    assert (metrics.tokens_in, metrics.tokens_out, metrics.total_tokens) == (101, 20, 121)
    assert (metrics.cost_usd, metrics.api_calls) == (0.5, 2)
