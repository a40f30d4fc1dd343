"""The first page of a user's chatroom list, cached as the response body the API sent.

This is a response cache, the HTTP layer's (``api.list_chatrooms`` reads and fills it);
the use cases in ``rooms.py`` deal in rows and only say when a user's list changed. It
holds the rendered body rather than the rows because a cached read is then one Redis
round trip and no work: decoding the rows and rendering them again would add a fifth to
a cached request's CPU for 3 rooms and double it for 20 (docs/bench-choices.md §6).

Invalidation: the page is stored under a per-user version number, and every change bumps
the version after its commit. A reader that read the database before a change can only
store under the old version, which nobody reads again; so no stale list survives a
change, whatever the interleaving.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from redis.exceptions import RedisError

from shared.db import Transaction

if TYPE_CHECKING:  # the context registers READ_SCRIPT
    from chat.context import ChatContext

log = structlog.get_logger(__name__)

VERSION_TTL_SECONDS = 30 * 86_400

# The version and the page under it in one round trip. KEYS[1] the version key, ARGV the
# page key around the version. (The page key is built inside: fine on one Redis server,
# not on a cluster.)
READ_SCRIPT = """
local version = redis.call('GET', KEYS[1]) or '0'
return {version, redis.call('GET', ARGV[1] .. version .. ARGV[2])}
"""


def _version_key(user_id: uuid.UUID) -> str:
    return f"chat:rooms-version:{user_id}"


def _page_prefix(user_id: uuid.UUID) -> str:
    return f"chat:rooms:{user_id}:"


@dataclass(frozen=True)
class Lookup:
    """What a read found: the cached body, or the key to store a fresh one under (None
    when the cache is off or unreachable)."""

    body: str | None
    store_key: str | None


MISS = Lookup(None, None)  # nothing cached, nothing to store (not the first page, or no cache)


async def read(ctx: ChatContext, user_id: uuid.UUID, limit: int) -> Lookup:
    if ctx.settings.chatroom_list_cache_ttl_seconds <= 0:
        return MISS
    prefix = _page_prefix(user_id)
    try:
        version, body = await ctx.list_cache_read(
            keys=[_version_key(user_id)], args=[prefix, f":{limit}"]
        )
    except RedisError as exc:
        log.warning("chat.list_cache_unavailable", error=repr(exc))
        return MISS
    return Lookup(body, None if body is not None else f"{prefix}{version}:{limit}")


async def store(ctx: ChatContext, lookup: Lookup, body: str) -> None:
    if lookup.store_key is None:
        return
    try:
        await ctx.redis.set(lookup.store_key, body, ex=ctx.settings.chatroom_list_cache_ttl_seconds)
    except RedisError as exc:
        log.warning("chat.list_cache_unavailable", error=repr(exc))


async def forget(ctx: ChatContext, user_id: uuid.UUID) -> None:
    """Every key of the user's list cache goes (their account was deleted)."""
    keys = [key async for key in ctx.redis.scan_iter(match=f"{_page_prefix(user_id)}*")]
    await ctx.redis.delete(_version_key(user_id), *keys)


def invalidate_after_commit(tx: Transaction, ctx: ChatContext, user_id: uuid.UUID) -> None:
    """The user's list changed in ``tx``: once it commits, no cached page is read again."""

    async def bump_version() -> None:
        key = _version_key(user_id)
        pipe = ctx.redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, VERSION_TTL_SECONDS)
        await pipe.execute()

    tx.after_commit(bump_version)
