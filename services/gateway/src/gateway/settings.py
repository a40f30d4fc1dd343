from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from shared.settings import ServiceSettings

# Every service the gateway knows how to route to; GATEWAY_UPSTREAMS picks the deployed ones.
KNOWN_UPSTREAMS = ("auth", "chat", "billing")


class Settings(ServiceSettings):
    auth_url: str = "http://127.0.0.1:8001"
    chat_url: str = "http://127.0.0.1:8002"
    billing_url: str = "http://127.0.0.1:8003"
    # Comma list of the upstreams that are deployed. A route to any other answers 503 and
    # /readyz does not check it.
    gateway_upstreams: Annotated[tuple[str, ...], NoDecode] = KNOWN_UPSTREAMS
    # The browser app's origin: the only origin CORS allows.
    client_url: str = "http://localhost:8000"
    upstream_connect_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    # Total time for a non-streaming upstream response; SSE responses have no total limit.
    upstream_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    token_state_cache_seconds: int = Field(default=86_400, ge=1)

    @field_validator("gateway_upstreams", mode="before")
    @classmethod
    def _split_upstreams(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @field_validator("gateway_upstreams")
    @classmethod
    def _known_upstreams(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(KNOWN_UPSTREAMS))
        if unknown:
            raise ValueError(
                f"unknown upstream(s) {', '.join(unknown)}; known: {', '.join(KNOWN_UPSTREAMS)}"
            )
        return tuple(dict.fromkeys(value))

    @field_validator("auth_url", "chat_url", "billing_url", "client_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    def upstream_url(self, name: str) -> str:
        """The base URL of upstream ``name`` (``auth``, ``chat`` or ``billing``)."""
        return {"auth": self.auth_url, "chat": self.chat_url, "billing": self.billing_url}[name]
