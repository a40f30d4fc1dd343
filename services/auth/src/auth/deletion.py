"""Deleting an account (DELETE /user/me): auth erases the user and says so with
``UserDeleted``, which chat, billing and the ai-worker act on (each erases its own part).

A token alone is not enough: the caller also sends a code that send-otp delivered to the
account's number just now, as a password change without a password does, so a stolen token
cannot delete the account. Every token of the account stops working at once: the cached
revocation time is dropped with the user, so the next check of any token asks auth, finds
no user and refuses it (``shared.revocation.UserGone``: 401 ``user_not_found``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import structlog
from asgi_correlation_id.context import correlation_id

from auth import repository
from auth.context import AuthContext
from auth.service import LOGIN, PRODUCER, check_code
from auth.sessions import forget_token_state
from shared import erasure, outbox, publish
from shared.db import Database
from shared.errors import AppError, NotFound
from shared.events import UserDeleted
from shared.tokens import now_ms

log = structlog.get_logger(__name__)


async def delete_account(
    db: Database, ctx: AuthContext, user_id: uuid.UUID, code: str, client_ip: str
) -> None:
    async with db.transaction() as tx:
        user = await repository.lock_user(tx.conn, user_id)
        if user is None:
            raise NotFound("User not found.", code="user_not_found")
        attempt = await ctx.throttle.code_attempt(user.mobile_number, client_ip)
        result = await check_code(tx, ctx, user, LOGIN, code)
        if not isinstance(result, AppError):
            at = now_ms()
            await forget_token_state(tx, ctx, user.id)
            await repository.delete_user(tx.conn, user.id)
            # What auth published about the user (UserRegistered holds the number) goes
            # from its outbox; the deletion itself is published, with the id only.
            await erasure.erase_from_outbox(tx.conn, user.id)
            deleted = UserDeleted(user_id=user.id, deleted_at=datetime.fromtimestamp(at, UTC))
            await outbox.add(
                tx.conn, deleted, producer=PRODUCER, correlation_id=correlation_id.get()
            )
    # Raised after the commit, so a wrong guess is counted.
    if isinstance(result, AppError):
        raise result
    await attempt.forgive()
    log.info("auth.account_deleted", user_id=str(user.id))


async def erase_published(ctx: AuthContext, user_id: uuid.UUID) -> None:
    """What auth published about the user leaves its stream (and dead letters). Auth's own
    handler of UserDeleted does it, so a Redis failure is retried like any handler's."""
    await erasure.erase_from_stream(ctx.redis, publish.stream_for(PRODUCER), user_id)
