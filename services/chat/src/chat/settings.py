from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    port: int = Field(default=8002, ge=1, le=65535)

    chatroom_list_cache_ttl_seconds: int = Field(default=480, ge=0)
    basic_tier_daily_prompt_limit: int = Field(default=5, ge=0)
    prompt_max_chars: int = Field(default=8000, ge=1, le=100_000)
    chatroom_name_max_chars: int = Field(default=100, ge=1, le=200)
    # What MessageQueued carries of the conversation before the prompt.
    history_max_turns: int = Field(default=20, ge=0, le=200)
    history_max_chars: int = Field(default=16_000, ge=0)
    # Replies still queued after this long are queued again (then failed after max_requeues).
    reconcile_after_seconds: float = Field(default=300, gt=0)
    reconcile_interval_seconds: float = Field(default=10, gt=0)
    max_requeues: int = Field(default=3, ge=0)
    claim_idle_seconds: float = Field(default=60, ge=1)
    max_deliveries: int = Field(default=5, ge=1)
    sse_ping_seconds: int = Field(default=15, ge=1)
