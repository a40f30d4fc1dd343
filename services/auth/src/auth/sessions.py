"""A user's sessions: issuing tokens, revoking them (logout, and every password change),
and the revocation time the other services ask for. Each use case takes the Database
and owns its transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import structlog
from psycopg_pool import AsyncConnectionPool
from redis.exceptions import RedisError

from auth import repository
from auth.context import AuthContext
from auth.repository import User
from shared.db import Database, Transaction
from shared.errors import NotFound, ServiceUnavailable
from shared.revocation import Lookup, UserGone
from shared.tiers import SubscriptionState, subscription_state
from shared.tokens import AccessToken, issue_access_token, now_ms, token_state_key

log = structlog.get_logger(__name__)


def to_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def issue_token(ctx: AuthContext, user: User, now: float) -> AccessToken:
    return issue_access_token(
        ctx.settings.jwt_secret,
        str(user.id),
        ttl_seconds=ctx.settings.jwt_expires_in_seconds,
        mobile_number=user.mobile_number,
        now=now,
    )


async def _drop_token_state(ctx: AuthContext, user_id: uuid.UUID) -> str:
    """Delete the user's cached "valid after" time; its key. 503 when Redis is down: a
    revocation that could leave a stale cached time must not commit."""
    key = token_state_key(str(user_id))
    try:
        await ctx.redis.delete(key)
    except RedisError as exc:
        log.error("auth.token_state_unavailable", error=repr(exc))
        raise ServiceUnavailable() from exc
    return key


async def revoke_tokens(tx: Transaction, ctx: AuthContext, user_id: uuid.UUID, at: float) -> None:
    """Tokens issued before ``at`` stop working.

    The gateway caches each user's "valid after" time in Redis. The cached value is
    deleted before the new time is written (so no stale value survives this transaction)
    and set again once it committed; the gateway only fills a missing key (SET NX), so
    it cannot overwrite the newer value.
    """
    key = await _drop_token_state(ctx, user_id)
    await repository.set_tokens_valid_after(tx.conn, user_id, to_datetime(at))

    async def publish() -> None:
        await ctx.redis.set(key, f"{at:.3f}", ex=ctx.settings.jwt_expires_in_seconds)

    tx.after_commit(publish)


async def forget_token_state(tx: Transaction, ctx: AuthContext, user_id: uuid.UUID) -> None:
    """The user is being deleted in ``tx``: their cached "valid after" time goes now and
    again after the commit (a fill that read the row before the commit may have put it
    back). From then on a look-up finds no user, which refuses every token of theirs
    (``shared.revocation.UserGone``) and caches nothing."""
    key = await _drop_token_state(ctx, user_id)

    async def forget_again() -> None:
        await ctx.redis.delete(key)

    tx.after_commit(forget_again)


async def logout(db: Database, ctx: AuthContext, user_id: uuid.UUID) -> None:
    """Revokes every token issued so far for the user (sign out everywhere)."""
    async with db.transaction() as tx:
        user = await repository.lock_user(tx.conn, user_id)
        if user is None:
            raise NotFound("User not found.", code="user_not_found")
        await revoke_tokens(tx, ctx, user.id, now_ms())
    log.info("auth.logged_out", user_id=str(user_id))


async def get_user(db: Database, user_id: uuid.UUID) -> User:
    async with db.transaction() as tx:
        user = await repository.get_user(tx.conn, user_id)
    if user is None:
        raise NotFound("User not found.", code="user_not_found")
    return user


async def get_user_with_subscription(
    db: Database, user_id: uuid.UUID
) -> tuple[User, SubscriptionState | None]:
    async with db.transaction() as tx:
        user = await repository.get_user(tx.conn, user_id)
        subscription = await subscription_state(tx.conn, user_id)
    if user is None:
        raise NotFound("User not found.", code="user_not_found")
    return user, subscription


async def tokens_valid_after(db: Database, user_id: uuid.UUID) -> float | None:
    user = await get_user(db, user_id)
    return user.tokens_valid_after.timestamp() if user.tokens_valid_after else None


def token_lookup(pool: AsyncConnectionPool) -> Lookup:
    """Auth answers revocation look-ups from its own database (it owns the truth)."""

    async def lookup(user_id: str) -> float | None:
        try:
            return await tokens_valid_after(Database(pool), uuid.UUID(user_id))
        except (ValueError, NotFound):
            raise UserGone(user_id) from None

    return lookup
