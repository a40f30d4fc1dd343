"""pytest fixtures for real Postgres and real Redis.

Loaded by the repository's root ``conftest.py``. ``make test`` exports ``DATABASE_URL`` and
``REDIS_URL`` (local servers, or embedded ones it started); each test session creates its
own database on that server and drops it at the end, so sessions never see each other's
rows. Redis is shared, so tests use unique ids (random mobile numbers, UUIDs) for keys.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from redis.asyncio import Redis

from shared.redis import open_redis
from shared.revocation import NO_REVOCATION
from shared.tokens import token_state_key

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
# Random-looking, as any secret outside development must be (shared.secrets).
TEST_JWT_SECRET = "tst-Q9vR2mXk7LpW4sZt8NbYc3HdJf6GaUe1KoPi5TwVxQmRz8Bn3Cq5Dv7Ew9F"


def _with_dbname(url: str, dbname: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo("", **params)


@pytest.fixture(scope="session")
def server_database_url() -> str:
    return os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)


@pytest.fixture(scope="session")
def database_url(server_database_url: str) -> Iterator[str]:
    """A fresh, empty database for this test session; dropped when the session ends."""
    name = f"gb_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(server_database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_dbname(server_database_url, name)
    finally:
        with psycopg.connect(server_database_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = open_redis(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def jwt_secret() -> str:
    return TEST_JWT_SECRET


def mark_user_unrevoked(redis_url: str, user_id: str, ttl_seconds: int = 3600) -> None:
    """Cache "never revoked" for ``user_id``, as a service does after auth confirmed the user
    exists: lets a service's tests authenticate users that only exist in a token."""
    import redis

    with redis.Redis.from_url(redis_url) as client:
        client.set(token_state_key(user_id), NO_REVOCATION, ex=ttl_seconds)


def random_mobile_number() -> str:
    """A valid Indian mobile number (E.164) that no other test will pick by chance."""
    return "+919" + "".join(secrets.choice("0123456789") for _ in range(9))
