from __future__ import annotations

import ipaddress
from typing import Annotated, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from shared.settings import ServiceSettings, local_url

# Every service the gateway knows how to route to; GATEWAY_UPSTREAMS picks the deployed ones.
KNOWN_UPSTREAMS = ("auth", "chat", "billing")


class Settings(ServiceSettings):
    port_from_env_file: ClassVar[bool] = True  # .env's PORT is the public port: this one

    auth_url: str = local_url("auth")
    chat_url: str = local_url("chat")
    billing_url: str = local_url("billing")
    # Comma list of the upstreams that are deployed. A route to any other answers 503.
    gateway_upstreams: Annotated[tuple[str, ...], NoDecode] = KNOWN_UPSTREAMS
    # The browser app's origin: the only origin CORS allows.
    client_url: str = "http://localhost:8000"
    # The gateway is the edge: it believes no X-Forwarded-For unless its own load balancer's
    # or ingress's addresses are listed here, so no client can choose its address.
    forwarded_allow_ips: str = ""
    # Upstream connections for ordinary requests, and separately for SSE streams (which
    # hold theirs for as long as they are open), so streams never starve ordinary requests.
    upstream_pool_size: int = Field(default=100, ge=1, le=10_000)
    stream_pool_size: int = Field(default=1000, ge=1, le=100_000)
    # Longest wait for an upstream connection (a free one from the pool, or a new one);
    # after it the client gets 503 with Retry-After.
    upstream_connect_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    # Total time for a non-streaming upstream response, and for a stream's response headers;
    # an open stream has no total limit.
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

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _readable_proxy_list(cls, value: str) -> str:
        """Every entry an address or a network: uvicorn would take anything else as a literal
        that never matches, and say nothing. Not ``*``: with it uvicorn believes every peer
        and takes the first X-Forwarded-For address, which the client writes itself."""
        for entry in (entry.strip() for entry in value.split(",")):
            if not entry:
                continue
            try:
                ipaddress.ip_network(entry)
            except ValueError:
                raise ValueError(
                    f"FORWARDED_ALLOW_IPS: {entry!r} is not an IP address or network; list "
                    "the addresses or CIDRs of the proxies in front of the gateway (not *)"
                ) from None
        return value

    @field_validator("auth_url", "chat_url", "billing_url", "client_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    def upstream_url(self, name: str) -> str:
        """The base URL of upstream ``name`` (``auth``, ``chat`` or ``billing``)."""
        return {"auth": self.auth_url, "chat": self.chat_url, "billing": self.billing_url}[name]
