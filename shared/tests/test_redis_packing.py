"""shared.redis.open_redis packs commands in C (hiredis), byte for byte as redis-py's
Python packing would, and refuses what redis-py refuses."""

import uuid

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from shared.redis import PackedInC, open_redis

ARGUMENTS = [
    ("SET", "k", "v"),
    ("XADD", "reply:1", "MAXLEN", "~", 2000, "*", "type", "token", "text", "héron ✓ " * 40),
    ("SET", b"\x00\xff", 0.1, -7, 1e20, 1 / 3),
    ("CLIENT TRACKING", "on", "BCAST", "PREFIX", "auth:"),
    (b"CONFIG GET", "maxmemory"),
    ("SET", "big", "x" * 100_000),
    ("SET", "view", memoryview(b"abc")),  # hiredis refuses it: redis-py packs it
]


@pytest.fixture
async def connection():
    """A connection of open_redis's pool, never connected: packing needs no server."""
    client = open_redis("redis://127.0.0.1:6379/0")
    yield client.connection_pool.make_connection()
    await client.aclose()


@pytest.mark.parametrize("args", ARGUMENTS, ids=lambda args: str(args[0]))
async def test_a_command_is_packed_as_redis_py_packs_it(connection, args):
    assert isinstance(connection, PackedInC)
    python = Connection(decode_responses=True)
    assert b"".join(connection.pack_command(*args)) == b"".join(python.pack_command(*args))


@pytest.mark.parametrize("value", [None, True, object()])
async def test_what_redis_py_refuses_is_still_refused(connection, value):
    with pytest.raises(DataError):
        connection.pack_command("SET", "k", value)


async def test_values_go_to_redis_and_back_unchanged(redis_url):
    client = open_redis(redis_url)
    key = f"test.packing.{uuid.uuid4().hex}"
    try:
        fields = {"text": "héron ✓\r\n$3\r\n", "n": 42, "f": 0.1}
        await client.xadd(key, fields)
        [(_, stored)] = await client.xrange(key)
        assert stored == {"text": "héron ✓\r\n$3\r\n", "n": "42", "f": "0.1"}
        assert await client.execute_command("CLIENT ID") > 0  # a two-word command name
    finally:
        await client.delete(key)
        await client.aclose()


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:6379/0", "Connection"),
        ("rediss://127.0.0.1:6380/0", "SSLConnection"),
        ("unix:///tmp/redis.sock?db=1", "UnixDomainSocketConnection"),
    ],
)
async def test_every_kind_of_url_keeps_its_connection_and_packs_in_c(url, kind):
    client = open_redis(url)
    try:
        connection = client.connection_pool.make_connection()  # not connected: no server needed
        assert isinstance(connection, PackedInC)
        packing, own = type(connection).__mro__[1:3]
        assert (packing, own.__name__) == (PackedInC, kind)
    finally:
        await client.aclose()
