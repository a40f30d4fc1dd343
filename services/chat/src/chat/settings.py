from __future__ import annotations

from pydantic import Field

from shared.settings import SERVICE_PORTS, ConsumerSettings


class Settings(ConsumerSettings):
    port: int = Field(default=SERVICE_PORTS["chat"], ge=1, le=65535)

    chatroom_list_cache_ttl_seconds: int = Field(default=480, ge=0)
    basic_tier_daily_prompt_limit: int = Field(default=5, ge=0)
    # The Gemini model each tier is answered by (chat/models.py): Basic has its own, Pro
    # its own and Basic's to choose from, per chatroom.
    gemini_model_basic: str = Field(default="gemini-2.5-flash", min_length=1, max_length=200)
    gemini_model_pro: str = Field(default="gemini-2.5-pro", min_length=1, max_length=200)
    prompt_max_chars: int = Field(default=8000, ge=1, le=100_000)
    chatroom_name_max_chars: int = Field(default=100, ge=1, le=200)
    # What MessageQueued carries of the conversation before the prompt.
    history_max_turns: int = Field(default=20, ge=0, le=200)
    history_max_chars: int = Field(default=16_000, ge=0)
    # Replies still queued after this long are queued again (then failed after max_requeues).
    reconcile_after_seconds: float = Field(default=300, gt=0)
    reconcile_interval_seconds: float = Field(default=10, gt=0)
    max_requeues: int = Field(default=3, ge=0)
    sse_ping_seconds: int = Field(default=15, ge=1)
    # A user owns at most this many chatrooms; creating one more answers 409 (delete one).
    max_chatrooms_per_user: int = Field(default=1000, ge=1)
    # Reply streams (SSE) one user may have open at once, across every chat process;
    # one more answers 429. Each holds a Redis connection in a blocking read.
    max_streams_per_user: int = Field(default=5, ge=1, le=100)
    # Reply streams one chat process serves at once; one more answers 503. Stay well below
    # the process's Redis connections (shared.redis.MAX_CONNECTIONS, 1024).
    max_open_streams: int = Field(default=500, ge=1, le=1000)
    # A stream's slot is a lease in Redis, renewed while the stream is open: a process that
    # died without giving its slots back frees them after this long.
    stream_lease_seconds: int = Field(default=30, ge=1, le=3600)
    # A share link's snapshot holds at most the latest this many messages; an export too.
    share_max_messages: int = Field(default=1000, ge=1, le=10_000)
    export_max_messages: int = Field(default=10_000, ge=1, le=100_000)
