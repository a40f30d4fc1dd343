"""What chat's use cases share: its settings, the Redis client and the stream slots."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from chat.settings import Settings
from chat.stream_slots import StreamSlots

PRODUCER = "chat"

# The chatroom list cache's read (chat/rooms.py): the version and the page under it in one
# round trip. KEYS[1] the version key, ARGV the page key around the version. (The page key
# is built inside: fine on one Redis server, not on a cluster.)
LIST_CACHE_READ = """
local version = redis.call('GET', KEYS[1]) or '0'
return {version, redis.call('GET', ARGV[1] .. version .. ARGV[2])}
"""


@dataclass
class ChatContext:
    settings: Settings
    redis: Redis
    streams: StreamSlots

    def __post_init__(self) -> None:
        self.list_cache_read = self.redis.register_script(LIST_CACHE_READ)
