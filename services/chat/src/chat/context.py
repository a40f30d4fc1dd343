"""What chat's use cases share: its settings, the Redis client and the stream slots."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from chat import list_cache
from chat.settings import Settings
from chat.stream_slots import StreamSlots

PRODUCER = "chat"


@dataclass
class ChatContext:
    settings: Settings
    redis: Redis
    streams: StreamSlots

    def __post_init__(self) -> None:
        self.list_cache_read = self.redis.register_script(list_cache.READ_SCRIPT)
