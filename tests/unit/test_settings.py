"""Configuration comes from the environment, else the embedded defaults (SQLite, no Redis)."""

import pytest

from domain.errors import InvalidSetting
from resources import settings


def test_default_database_is_a_sqlite_file_in_a_created_state_dir(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("INDORCH_STATE_DIR", str(tmp_path / "state"))
    assert settings.database_url() == f"sqlite:///{tmp_path}/state/indorch.db"
    assert (tmp_path / "state").is_dir()
    assert not settings.database_url_is_configured()


def test_database_url_from_the_environment_wins(monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://app@db/indorch")
    assert settings.database_url() == "postgresql+psycopg://app@db/indorch"
    assert settings.database_url_is_configured()


def test_redis_is_optional_and_empty_means_unset(monkeypatch) -> None:
    monkeypatch.setenv("REDIS_URL", "")
    assert settings.redis_url() is None
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert settings.redis_url() == "redis://127.0.0.1:6379/0"


def test_postgres_scheme_is_accepted_as_postgresql_on_psycopg_3(monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://app:secret@db:5432/indorch")
    assert settings.database_url() == "postgresql+psycopg://app:secret@db:5432/indorch"


@pytest.mark.parametrize(
    "url",
    [
        "mysql://app@db/indorch",  # a database we do not run on
        "foo://bar",  # no such database
        "garbage",  # not a URL
        "postgresql://app@db:notaport/indorch",  # a port that is not a number
    ],
)
def test_an_unsupported_database_url_is_a_typed_error_naming_the_variable(
    monkeypatch, url: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(InvalidSetting) as refused:
        settings.database_url()
    assert refused.value.setting == "DATABASE_URL"
    assert "postgresql://" in str(refused.value) and "sqlite:///" in str(refused.value)


def test_the_error_never_shows_the_password(monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://app:hunter2@db/indorch")
    with pytest.raises(InvalidSetting) as refused:
        settings.database_url()
    assert "hunter2" not in str(refused.value)


def test_a_state_dir_that_is_a_file_is_a_typed_error_naming_the_variable(
    monkeypatch, tmp_path
) -> None:
    a_file = tmp_path / "state"
    a_file.write_text("not a directory")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("INDORCH_STATE_DIR", str(a_file))
    with pytest.raises(InvalidSetting) as refused:
        settings.database_url()
    assert refused.value.setting == "INDORCH_STATE_DIR"
    assert str(a_file) in str(refused.value)


def test_a_state_dir_under_a_file_is_a_typed_error_too(monkeypatch, tmp_path) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("INDORCH_STATE_DIR", str(tmp_path / "file" / "state"))
    with pytest.raises(InvalidSetting) as refused:
        settings.state_dir()
    assert refused.value.setting == "INDORCH_STATE_DIR"


@pytest.mark.parametrize(
    "variable", ["INDORCH_HISTORY_RETENTION_DAYS", "INDORCH_RUN_RETENTION_DAYS"]
)
def test_retention_days_default_to_90_and_must_be_whole_positive_days(
    monkeypatch, variable: str
) -> None:
    monkeypatch.delenv(variable, raising=False)
    assert settings.retention_days(variable) == 90
    monkeypatch.setenv(variable, "30")
    assert settings.retention_days(variable) == 30
    for bad in ("0", "-3", "1.5", "forever"):
        monkeypatch.setenv(variable, bad)
        with pytest.raises(InvalidSetting, match=variable):
            settings.retention_days(variable)


def test_the_dagster_webserver_is_optional_and_its_trailing_slash_dropped(monkeypatch) -> None:
    monkeypatch.setenv("INDORCH_DAGSTER_WEBSERVER_URL", "")
    assert settings.dagster_webserver_url() is None  # the dispatch sensor alone
    monkeypatch.setenv("INDORCH_DAGSTER_WEBSERVER_URL", "http://127.0.0.1:3000/")
    assert settings.dagster_webserver_url() == "http://127.0.0.1:3000"
