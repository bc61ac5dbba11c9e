"""The service fixtures hand out working PostgreSQL and Redis connections."""

from __future__ import annotations

import uuid

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def _scalar(url: str, sql: str):
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql)).scalar_one()
    finally:
        engine.dispose()


def test_postgres_answers(postgres_url: str) -> None:
    assert "PostgreSQL" in _scalar(postgres_url, "select version()")


def test_fresh_postgres_database_is_new_and_empty(
    fresh_postgres_url: str, postgres_url: str
) -> None:
    name = make_url(fresh_postgres_url).database
    assert name != make_url(postgres_url).database
    assert name == name.lower()
    assert len(name) <= 63
    assert _scalar(fresh_postgres_url, "select current_database()") == name
    tables = "select count(*) from information_schema.tables where table_schema = 'public'"
    assert _scalar(fresh_postgres_url, tables) == 0


def test_redis_ping_and_roundtrip(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    key = f"indorch:test:{uuid.uuid4().hex}"
    try:
        assert client.ping()
        client.set(key, "value", ex=60)
        assert client.get(key) == b"value"
    finally:
        client.delete(key)
        client.close()
    check = redis.Redis.from_url(redis_url)
    try:
        assert check.exists(key) == 0
    finally:
        check.close()
