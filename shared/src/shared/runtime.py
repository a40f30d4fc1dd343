"""What a service with a database runs for its lifetime: the Postgres pool, the Redis
client, the outbox relay, its event consumers and the revocation check of its tokens.
Opened in the app's lifespan and put on ``app.state`` (``pool``, ``redis``, ``relay``,
``consumer``, ``token_states``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from shared.aio import Background
from shared.consumer import StreamConsumer, consumer_name
from shared.db import open_pool
from shared.delivery import Handler, InboxHandler, inbox_processor
from shared.events import Event
from shared.outbox import OutboxRelay
from shared.redis import open_redis
from shared.revocation import Lookup, TokenStates, auth_lookup, lookup_client
from shared.settings import ServiceSettings
from shared.tokens import TOKEN_STATE_PREFIX
from shared.tracking import TrackedKeys

# How a service learns a user's revocation time on a cache miss, given its pool.
TokenLookup = Callable[[AsyncConnectionPool], Lookup]
TOKEN_LOOKUP_TIMEOUT_SECONDS = 5.0


@dataclass
class Runtime:
    app: FastAPI
    settings: ServiceSettings
    pool: AsyncConnectionPool
    redis: Redis
    background: Background

    def consume(
        self,
        service: str,
        streams: list[str],
        handlers: Mapping[type[Event], InboxHandler[Any]],
        ctx: object,
        *,
        claim_idle_seconds: float,
        max_deliveries: int,
        concurrency: int = 8,
        before: Mapping[type[Event], Handler[Any]] | None = None,
    ) -> StreamConsumer:
        """Start consuming ``streams`` as group ``service``, each event applied once (the
        inbox) in a transaction with its handler's effects (``before``: see
        :func:`shared.delivery.inbox_processor`)."""
        consumer = StreamConsumer(
            self.redis,
            group=service,
            name=consumer_name(service),
            streams=streams,
            types={cls.type_name() for cls in handlers},
            process=inbox_processor(self.pool, handlers, ctx, before=before),
            concurrency=concurrency,
            claim_idle_ms=int(claim_idle_seconds * 1000),
            max_deliveries=max_deliveries,
        )
        self.app.state.consumer = consumer
        self.background.start("consumer", consumer.run)
        return consumer


@asynccontextmanager
async def service_runtime(
    app: FastAPI,
    settings: ServiceSettings,
    schema: str,
    *,
    token_lookup: TokenLookup | None = None,
) -> AsyncIterator[Runtime]:
    """``token_lookup``: where revocation times come from on a cache miss; by default,
    auth's internal route at ``AUTH_URL`` (auth itself passes its own database)."""
    pool = await open_pool(
        settings.database_url,
        schema,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
    )
    redis = open_redis(settings.redis_url)
    background = Background()
    relay = OutboxRelay(pool, redis, database_url=settings.database_url, schema=schema)
    http = lookup_client(TOKEN_LOOKUP_TIMEOUT_SECONDS)
    lookup = token_lookup(pool) if token_lookup else auth_lookup(http, settings.auth_url)
    app.state.pool, app.state.redis, app.state.relay = pool, redis, relay
    tracked = TrackedKeys(settings.redis_url, TOKEN_STATE_PREFIX)
    app.state.token_states = TokenStates(
        redis, lookup, cache_seconds=settings.jwt_expires_in_seconds, tracked=tracked
    )
    background.start("outbox-relay", relay.run)
    background.start("token-state-tracking", tracked.run)
    try:
        yield Runtime(app, settings, pool, redis, background)
    finally:
        await background.shutdown(grace=10)
        await http.aclose()
        await redis.aclose()
        await pool.close()
