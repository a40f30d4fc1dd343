"""What auth's use cases need besides the database; built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from auth.delivery import OtpSender
from auth.passwords import Hashing
from auth.settings import Settings
from auth.throttle import Throttle


@dataclass
class AuthContext:
    """What the use cases need besides the database; built once per process."""

    settings: Settings
    redis: Redis
    throttle: Throttle
    sender: OtpSender
    hashing: Hashing
