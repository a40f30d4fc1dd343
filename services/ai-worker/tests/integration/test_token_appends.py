"""The process's token appends (ai_worker/tokens.py) against real Redis: replies that get
tokens at the same moment share a round trip, a reply's tokens stay in order, and a failed
append is raised to the reply that needed it."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from ai_worker.tokens import TokenAppends
from dev.proc import free_port
from shared.replies import reply_stream


class CountingRedis(Redis):
    """Real Redis; counts the pipelines sent."""

    pipelines = 0

    def pipeline(self, transaction=True, shard_hint=None):
        CountingRedis.pipelines += 1
        return super().pipeline(transaction, shard_hint)


async def texts(redis: Redis, reply_id: str) -> list[str]:
    return [f["text"] for _, f in await redis.xrange(reply_stream(reply_id))]


async def test_replies_given_tokens_together_share_one_round_trip(redis_url):
    redis = CountingRedis.from_url(redis_url, decode_responses=True)
    CountingRedis.pipelines = 0
    appends = TokenAppends(redis)
    ids = [f"t-{uuid.uuid4()}" for _ in range(20)]
    writers = [appends.writer(i, ttl=60) for i in ids]
    try:
        for writer in writers:  # the same moment: a burst of chunks read at once
            writer.add("Hel")
        for writer in writers:
            writer.add("lo")
        await asyncio.gather(*(w.flush() for w in writers))
        assert CountingRedis.pipelines == 1
        for reply_id in ids:
            assert await texts(redis, reply_id) == ["Hello"]
            assert 0 < await redis.ttl(reply_stream(reply_id)) <= 60
    finally:
        await redis.delete(*(reply_stream(i) for i in ids))
        await redis.aclose()


async def test_tokens_given_while_a_round_trip_is_out_go_in_the_next_in_order(redis):
    appends = TokenAppends(redis)
    reply_id = f"t-{uuid.uuid4()}"
    writer = appends.writer(reply_id, ttl=60)
    try:
        writer.add("one ")
        await asyncio.sleep(0)  # the first pipeline is on its way
        writer.add("two ")
        writer.add("three")
        await writer.flush()
        writer.add(" four")
        await writer.flush()
        assert await texts(redis, reply_id) == ["one ", "two three", " four"]
    finally:
        await redis.delete(reply_stream(reply_id))


async def test_a_failed_append_is_raised_to_its_writer():
    dead = Redis(host="127.0.0.1", port=free_port(), decode_responses=True)
    writer = TokenAppends(dead).writer("t-unreachable", ttl=60)
    writer.add("lost")
    with pytest.raises(RedisConnectionError):
        await writer.flush()
    with pytest.raises(RedisConnectionError):
        writer.add("more")  # the next chunk's append raises too
    await writer.abandon()  # a failed attempt's clean-up does not raise
    await dead.aclose()
