"""Settings base shared by every service.

Environment variable names follow the reference service (``PORT``, ``DATABASE_URL``,
``REDIS_URL``, ``JWT_SECRET``, ``NODE_ENV``...). Values come from the environment first,
then from a ``.env`` file in the working directory, then from the defaults below.

Production is the default: a process started without ``APP_ENV`` refuses what production
refuses (weak secrets, codes in responses, the simulators). ``make run`` chooses
``development`` explicitly; the tests choose ``test``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.secrets import HOW_TO_GENERATE, weakness

AppEnv = Literal["development", "test", "production"]

# Each service's port: its settings' default, where `make run` and the gateway find it
# on this machine. The Kubernetes manifests (a Deployment's containerPort, its Service
# and config.env) are the deployed copy, checked against this by deploy/tests.
SERVICE_PORTS = {"gateway": 8000, "auth": 8001, "chat": 8002, "billing": 8003, "ai-worker": 8004}


def local_url(service: str) -> str:
    """Where ``service`` listens on this machine by default."""
    return f"http://127.0.0.1:{SERVICE_PORTS[service]}"


class _WithoutPort(PydanticBaseSettingsSource):
    """A settings source without its ``port``: see ``port_from_env_file``."""

    def __init__(self, settings_cls: type[BaseSettings], source: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self.source = source

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ answers for the whole source

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self.source().items() if k != "port"}


class ServiceSettings(BaseSettings):
    """What every service reads. A service subclasses it and adds its own fields."""

    # Services that issue or verify tokens need JWT_SECRET; the ai-worker does not.
    requires_jwt_secret: ClassVar[bool] = True
    # `.env` is shared by every process started from its directory, and its PORT is the
    # public one, the gateway's: the other services take PORT from the real environment
    # only (`make run` and the image set it), else their own default (SERVICE_PORTS).
    port_from_env_file: ClassVar[bool] = False

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
    port: int = Field(default=SERVICE_PORTS["gateway"], ge=1, le=65535)
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
    auth_url: str = local_url("auth")
    # Peers whose X-Forwarded-For is believed (comma list of addresses or CIDRs, or *):
    # the client address is the right-most one not in this list. The services behind the
    # gateway trust the gateway (loopback under `make run`); the gateway overrides this.
    forwarded_allow_ips: str = "127.0.0.1,::1"
    # /readyz names each failed dependency only when true; unset: everywhere but production.
    readyz_details: bool | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if cls.port_from_env_file:
            return init_settings, env_settings, dotenv_settings, file_secret_settings
        return (
            init_settings,
            env_settings,
            _WithoutPort(settings_cls, dotenv_settings),
            file_secret_settings,
        )

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


class ConsumerSettings(ServiceSettings):
    """What every service that consumes events reads besides (auth, chat, billing, the
    ai-worker)."""

    # An unacknowledged entry idle this long is taken over by another consumer. Owners
    # heartbeat their in-flight entries, so this bounds crash recovery, not handling time;
    # the ai-worker's reply lease is a third of it.
    claim_idle_seconds: float = Field(default=60.0, ge=1)
    # Tries before an entry goes to <stream>.dlq.
    max_deliveries: int = Field(default=5, ge=1)
