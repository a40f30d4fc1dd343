"""Settings base shared by every service.

Environment variable names follow the reference service (``PORT``, ``DATABASE_URL``,
``REDIS_URL``, ``JWT_SECRET``, ``NODE_ENV``...). Values come from the environment first,
then from a ``.env`` file in the working directory, then from the defaults below.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

AppEnv = Literal["development", "test", "production"]

MIN_JWT_SECRET_BYTES = 32


class ServiceSettings(BaseSettings):
    """What every service reads. A service subclasses it and adds its own fields."""

    # Services that issue or verify tokens need JWT_SECRET; the ai-worker does not.
    requires_jwt_secret: ClassVar[bool] = True

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        populate_by_name=True,
    )

    app_env: AppEnv = Field(
        default="development",
        validation_alias=AliasChoices("APP_ENV", "NODE_ENV", "app_env"),
    )
    port: int = Field(default=8000, ge=1, le=65535)
    host: str = "127.0.0.1"
    log_level: str = "INFO"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    redis_url: str = "redis://127.0.0.1:6379/0"
    jwt_secret: str = ""
    jwt_expires_in_seconds: int = Field(default=86_400, ge=60, le=30 * 86_400)
    max_body_bytes: int = Field(default=262_144, ge=1_024)
    db_pool_min_size: int = Field(default=1, ge=0)
    db_pool_max_size: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _check_secrets(self) -> ServiceSettings:
        secret = self.jwt_secret.encode()
        if not self.requires_jwt_secret:
            return self
        if not secret:
            raise ValueError("JWT_SECRET is required (at least 32 bytes; `make run` generates one)")
        if self.app_env != "development" and len(secret) < MIN_JWT_SECRET_BYTES:
            raise ValueError(
                f"JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes outside development "
                f"(APP_ENV={self.app_env}, got {len(secret)} bytes)"
            )
        return self

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"
