"""Configuration comes from the environment, else the embedded defaults (SQLite, no Redis)."""

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
