"""shared.tracking and TokenStates over it, against a real Redis: a user's revocation time is
answered from the process's copy only while Redis is telling the process of every change."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from shared.aio import Background
from shared.revocation import NO_REVOCATION, TokenStates
from shared.testing.wait import eventually
from shared.tokens import TOKEN_STATE_PREFIX, token_state_key
from shared.tracking import MISSING, SILENCE_SECONDS, TrackedKeys


class CountingRedis:
    """The service's Redis client, counting the GETs that reach Redis."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.gets = 0

    async def get(self, key: str) -> Any:
        self.gets += 1
        return await self.redis.get(key)

    async def set(self, *args: Any, **kwargs: Any) -> Any:
        return await self.redis.set(*args, **kwargs)


async def until(condition: Callable[[], bool]) -> None:
    await eventually(condition, interval=0.01, timeout=5)


@pytest.fixture
async def tracked(redis_url: str) -> AsyncIterator[TrackedKeys]:
    """A copy of this test's own keys only: other suites running beside it write
    revocation times too, and every one of theirs would count as a change to ours."""
    keys = TrackedKeys(redis_url, TOKEN_STATE_PREFIX + f"test-{uuid.uuid4().hex[:12]}-")
    background = Background()
    background.start("tracking", keys.run)
    try:
        await until(keys.trusted)
        yield keys
    finally:
        await background.shutdown(grace=2)


def new_user(tracked: TrackedKeys) -> str:
    """A user id whose revocation key is under the copy's prefix."""
    return tracked.prefix.removeprefix(TOKEN_STATE_PREFIX) + str(uuid.uuid4())


def states(redis: CountingRedis, tracked: TrackedKeys, source: list[str]) -> TokenStates:
    async def lookup(user_id: str) -> float | None:
        source.append(user_id)
        return None

    return TokenStates(redis, lookup, cache_seconds=60, tracked=tracked)  # type: ignore[arg-type]


async def changed(tracked: TrackedKeys, generation: int) -> None:
    """Waits until Redis's invalidation message has arrived."""
    await until(lambda: tracked.generation != generation)


async def copied(token_states: TokenStates, tracked: TrackedKeys, user: str) -> None:
    """Reads the user's time until the copy holds it (a read is not kept when any key
    changed meanwhile, the write that made this one included)."""
    deadline = time.monotonic() + 5
    while tracked.get(token_state_key(user)) is MISSING:
        assert time.monotonic() < deadline, "never copied"
        await token_states.valid_after(user)
        await asyncio.sleep(0.01)


async def known(
    redis: Redis, tracked: TrackedKeys, value: str, source: list[str] | None = None
) -> tuple[str, str, CountingRedis, TokenStates]:
    """A new user whose time ``value`` is in Redis and in the copy: the user, the key, the
    counting client and the TokenStates that read it."""
    user = new_user(tracked)
    key = token_state_key(user)
    await redis.set(key, value, ex=60)
    counting = CountingRedis(redis)
    token_states = states(counting, tracked, [] if source is None else source)
    await copied(token_states, tracked, user)
    return user, key, counting, token_states


async def test_a_known_time_is_answered_without_asking_redis_again(redis, tracked):
    user, _, counting, token_states = await known(redis, tracked, "1700000000.250")
    counting.gets = 0
    assert [await token_states.valid_after(user) for _ in range(5)] == [1700000000.25] * 5
    assert counting.gets == 0


async def test_a_revocation_written_after_the_copy_was_made_is_seen(redis, tracked):
    user, key, _, token_states = await known(redis, tracked, NO_REVOCATION)
    assert await token_states.valid_after(user) is None
    before = tracked.generation
    await redis.delete(key)  # as auth does before committing a revocation ...
    await redis.set(key, "1800000000.000", ex=60)  # ... and after
    await changed(tracked, before)
    assert tracked.get(key) is MISSING
    assert await token_states.valid_after(user) == 1800000000.0


async def test_a_deleted_time_is_asked_of_the_source(redis, tracked):
    source: list[str] = []
    user, key, _, token_states = await known(redis, tracked, "1700000000.000", source)
    before = tracked.generation
    await redis.delete(key)  # as erasure does, or Redis losing it
    await changed(tracked, before)
    assert await token_states.valid_after(user) is None
    assert source == [user]


async def test_a_value_read_while_a_key_changed_is_not_kept(redis, tracked):
    """The invalidation of a write made just after a read can arrive before the read's
    answer: a value read across any invalidation is not copied."""
    key = token_state_key(new_user(tracked))
    generation = tracked.generation
    await redis.set(token_state_key(new_user(tracked)), NO_REVOCATION, ex=60)
    await changed(tracked, generation)
    tracked.put(key, None, generation)
    assert tracked.get(key) is MISSING
    tracked.put(key, None, tracked.generation)
    assert tracked.get(key) is None


async def test_nothing_is_answered_from_the_copy_after_the_connection_is_lost(redis, tracked):
    user, key, _, token_states = await known(redis, tracked, NO_REVOCATION)
    await redis.client_kill_filter(_id=tracked.client_id)
    await until(lambda: not tracked.trusted())
    assert tracked.get(key) is MISSING
    # A revocation while the connection is down is not missed once it is back.
    await redis.set(key, "1800000000.000", ex=60)
    await until(tracked.trusted)
    assert await token_states.valid_after(user) == 1800000000.0


async def test_a_frozen_process_does_not_trust_its_copy_until_it_hears_from_redis(
    redis, redis_url, tracked
):
    """A process stopped (SIGSTOP, a VM pause) may hold invalidations it has not read yet:
    on waking, no request is answered from the copy before they are read."""
    user, key, _, token_states = await known(redis, tracked, NO_REVOCATION)
    # The revocation is written, and its invalidation sent, while this loop is blocked.
    with SyncRedis.from_url(redis_url, decode_responses=True) as blocking:
        blocking.set(key, "1800000000.000", ex=60)
    time.sleep(SILENCE_SECONDS + 0.2)  # noqa: ASYNC251  # the freeze itself
    assert tracked.get(key) is MISSING
    assert await token_states.valid_after(user) == 1800000000.0
