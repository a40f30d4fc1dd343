"""Settings base shared by every service.

Environment variable names follow the reference service (``PORT``, ``DATABASE_URL``,
``REDIS_URL``, ``JWT_SECRET``, ``NODE_ENV``...). Values come from the environment first,
then from a ``.env`` file in the working directory, then from the defaults below.

Production is the default: a process started without ``APP_ENV`` refuses what production
refuses (weak secrets, codes in responses, the simulators). ``make run`` chooses
``development`` explicitly; the tests choose ``test``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.secrets import HOW_TO_GENERATE, weakness

AppEnv = Literal["development", "test", "production"]


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
        default="production",
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
    # Where a service that verifies tokens asks for a user's revocation time when Redis
    # does not have it (auth's internal route; cluster-only).
    auth_url: str = "http://127.0.0.1:8001"
    # Peers whose X-Forwarded-For is believed (comma list of addresses or CIDRs, or *):
    # the client address is the right-most one not in this list. The services behind the
    # gateway trust the gateway (loopback under `make run`); the gateway overrides this.
    forwarded_allow_ips: str = "127.0.0.1,::1"
    # /readyz names each failed dependency only when true; unset: everywhere but production.
    readyz_details: bool | None = None

    @model_validator(mode="after")
    def _check_secrets(self) -> ServiceSettings:
        if not self.requires_jwt_secret:
            return self
        if not self.jwt_secret:
            raise ValueError(
                "JWT_SECRET is required (`make run` generates one; " + HOW_TO_GENERATE + ")"
            )
        self.refuse_weak_secret("JWT_SECRET", self.jwt_secret)
        return self

    def refuse_weak_secret(self, name: str, value: str) -> None:
        """Outside development, a placeholder, short or low-entropy secret stops the start."""
        if self.app_env == "development":
            return
        problem = weakness(value)
        if problem is not None:
            raise ValueError(f"{name} {problem}; {HOW_TO_GENERATE} (APP_ENV={self.app_env})")

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def show_readiness_details(self) -> bool:
        return not self.is_production if self.readyz_details is None else self.readyz_details
