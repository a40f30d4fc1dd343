from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator, model_validator

from shared.settings import SERVICE_PORTS, ConsumerSettings

SIMULATOR_API_KEY = "simulator"


class Settings(ConsumerSettings):
    requires_jwt_secret: ClassVar[bool] = False

    port: int = Field(default=SERVICE_PORTS["ai-worker"], ge=1, le=65535)

    # Required in production; elsewhere, unset with GEMINI_BASE_URL set (the simulator).
    google_gemini_api_key: str = ""
    gemini_model: str = Field(default="gemini-2.5-flash", min_length=1)
    # Points the SDK at another server (the simulator in development and tests); refused
    # in production.
    gemini_base_url: str | None = None
    gemini_api_version: str | None = None
    gemini_max_output_tokens: int = Field(default=2048, ge=1)
    # A whole generation attempt, first request byte to last chunk.
    gemini_request_timeout_seconds: float = Field(default=60.0, gt=0)
    # Silence between streamed chunks (and before the first) that counts as a hang.
    gemini_chunk_timeout_seconds: float = Field(default=20.0, gt=0)
    system_instruction: str | None = None

    ai_worker_concurrency: int = Field(default=64, ge=1, le=4096)
    retry_max_attempts: int = Field(default=5, ge=1, le=20)
    # No new attempt starts (and no backoff sleeps) past this many seconds after the first.
    retry_budget_seconds: float = Field(default=45.0, gt=0)
    retry_initial_delay_seconds: float = Field(default=1.0, ge=0)
    retry_max_delay_seconds: float = Field(default=10.0, ge=0)
    reply_stream_ttl_seconds: int = Field(default=3600, ge=60)
    # After an account is deleted (UserDeleted), the user's prompts still queued or in
    # flight are dropped for this long (ai_worker.erasure): longer than a prompt waits in
    # chat.events (claims and retries included) and than a reply stream lives.
    deleted_user_marker_seconds: int = Field(default=86_400, ge=3600)
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)

    @field_validator("gemini_base_url", "gemini_api_version", "system_instruction")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value if value and value.strip() else None

    @model_validator(mode="after")
    def _check_api_key(self) -> Settings:
        if self.is_production:
            if self.gemini_base_url:
                raise ValueError(
                    "GEMINI_BASE_URL is set, which points the worker at the Gemini simulator"
                    " or another endpoint; production calls Google's Gemini API: unset"
                    " GEMINI_BASE_URL and set GOOGLE_GEMINI_API_KEY (APP_ENV=production)"
                )
            if not self.google_gemini_api_key:
                raise ValueError(
                    "GOOGLE_GEMINI_API_KEY is required in production: set it to a Gemini API"
                    " key (https://aistudio.google.com/apikey)"
                )
        if not self.google_gemini_api_key:
            if not self.gemini_base_url:
                raise ValueError(
                    "GOOGLE_GEMINI_API_KEY is required"
                    " (or set GEMINI_BASE_URL to use the simulator)"
                )
            self.google_gemini_api_key = SIMULATOR_API_KEY
        return self
