from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from chat.app import create_app
from chat.settings import Settings
from shared.events import Event, ReplyCompleted, SubscriptionChanged, decode, encode
from shared.events.envelope import to_json
from shared.migrations import MESSAGING, TIER_PROJECTION, migrate
from shared.testing.asgi import served
from shared.testing.fixtures import mark_user_unrevoked
from shared.testing.wait import handled
from shared.tokens import issue_access_token

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


@pytest.fixture(scope="session")
def chat_database_url(database_url: str) -> str:
    migrate(database_url, "chat", [MESSAGING, TIER_PROJECTION, MIGRATIONS])
    return database_url


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {}


@pytest.fixture
def chat_settings(
    chat_database_url: str, redis_url: str, jwt_secret: str, settings_overrides: dict[str, object]
) -> Settings:
    values: dict[str, object] = {
        "database_url": chat_database_url,
        "redis_url": redis_url,
        "jwt_secret": jwt_secret,
        "app_env": "test",
        "basic_tier_daily_prompt_limit": 5,
        "claim_idle_seconds": 1,
    }
    values.update(settings_overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
async def app(chat_settings: Settings):
    """The chat app served on a real socket (SSE needs one), its background loops running."""
    application = create_app(chat_settings)
    async with (
        served(application) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
    ):
        application.state.test_client = client
        yield application


@pytest.fixture
def client(app) -> httpx.AsyncClient:
    return app.state.test_client


class User:
    """A user that exists only in its token (auth is not running): its revocation state is
    cached as "never revoked", as the gateway leaves it after asking auth."""

    def __init__(self, jwt_secret: str, redis_url: str) -> None:
        self.id = uuid.uuid4()
        mark_user_unrevoked(redis_url, str(self.id))
        token = issue_access_token(jwt_secret, str(self.id), ttl_seconds=3600).token
        self.headers = {"Authorization": f"Bearer {token}"}


@pytest.fixture
def user(jwt_secret: str, redis_url: str) -> User:
    return User(jwt_secret, redis_url)


@pytest.fixture
def make_user(jwt_secret: str, redis_url: str):
    return lambda: User(jwt_secret, redis_url)


class Api:
    """Shortcuts for the routes most tests go through."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def new_room(self, user: User, name: str | None = None) -> dict:
        response = await self.client.post(
            "/api/v1/chatroom",
            json={"name": name or f"room {secrets.token_hex(3)}"},
            headers=user.headers,
        )
        assert response.status_code == 201, response.text
        return response.json()["data"]["chatroom"]

    async def send(self, user: User, room_id: str, content: str = "hello") -> httpx.Response:
        return await self.client.post(
            f"/api/v1/chatroom/{room_id}/message", json={"content": content}, headers=user.headers
        )

    async def room(self, user: User, room_id: str) -> dict:
        response = await self.client.get(f"/api/v1/chatroom/{room_id}", headers=user.headers)
        assert response.status_code == 200, response.text
        return response.json()["data"]["chatroom"]

    async def usage(self, user: User) -> dict:
        response = await self.client.get("/api/v1/usage", headers=user.headers)
        assert response.status_code == 200, response.text
        return response.json()["data"]


class Bus:
    """Events in and out of chat, on the real streams."""

    def __init__(self, redis) -> None:
        self.redis = redis

    async def emit(
        self, event: Event, stream: str = "ai.events", producer: str = "ai-worker"
    ) -> None:
        envelope = encode(event, producer=producer)
        await self.redis.xadd(stream, {"type": envelope.type, "envelope": to_json(envelope)})

    async def tier(self, user: User, tier: str, as_of: datetime | None = None) -> None:
        """Billing says ``user`` is now on ``tier``; returns once chat has applied it."""
        pro = tier == "PRO"
        changed = SubscriptionChanged(
            user_id=user.id,
            tier="PRO" if pro else "BASIC",
            status="active" if pro else "canceled",
            current_period_end=datetime.now(UTC) + timedelta(days=30),
            as_of=as_of or datetime.now(UTC),
        )
        await self.emit(changed, stream="billing.events", producer="billing")
        await self.handled("billing.events")

    async def complete(self, user: User, room_id: str, reply_id: str, text: str) -> None:
        """The worker's ReplyCompleted for a reply, with ``text``."""
        await self.emit(
            ReplyCompleted(
                reply_id=uuid.UUID(reply_id),
                chatroom_id=uuid.UUID(room_id),
                user_id=user.id,
                text=text,
                finish_reason="STOP",
            )
        )

    async def handled(self, stream: str = "ai.events") -> None:
        """Every event on ``stream`` so far handled by chat (see shared.testing.wait)."""
        await handled(self.redis, stream, "chat")

    async def queued(self, reply_id: str) -> list:
        """The MessageQueued events chat published for one reply, oldest first."""
        found = []
        for _, fields in await self.redis.xrevrange("chat.events", count=5000):
            if (
                fields.get("type") == "MessageQueued"
                and json.loads(fields["envelope"])["payload"]["replyId"] == reply_id
            ):
                found.append(decode(fields["envelope"])[1])
        return list(reversed(found))


@pytest.fixture
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)


@pytest.fixture
def bus(redis) -> Bus:
    return Bus(redis)
