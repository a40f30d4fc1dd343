from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from auth.app import create_app
from auth.settings import Settings
from shared.migrations import MESSAGING, TIER_PROJECTION, migrate
from shared.testing.asgi import app_client

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


@pytest.fixture(scope="session")
def auth_database_url(database_url: str) -> str:
    migrate(database_url, "auth", [MESSAGING, TIER_PROJECTION, MIGRATIONS])
    return database_url


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Override in a test module (or with ``@pytest.mark.parametrize``) to change settings."""
    return {}


@pytest.fixture
def auth_settings(
    auth_database_url: str, redis_url: str, jwt_secret: str, settings_overrides: dict[str, object]
) -> Settings:
    values: dict[str, object] = {
        "database_url": auth_database_url,
        "redis_url": redis_url,
        "jwt_secret": jwt_secret,
        "app_env": "test",
        "otp_delivery": "response",
        "otp_resend_cooldown_seconds": 0,
    }
    values.update(settings_overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
async def client(auth_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    # A different client address per test, so per-IP limits never leak between tests.
    ip = f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
    async with app_client(create_app(auth_settings), client_ip=ip) as c:
        yield c
