"""The client address every service sees: uvicorn, configured as ``shared.cli`` starts it,
believes X-Forwarded-For only from the peers in FORWARDED_ALLOW_IPS, and takes the right-most
address that is not one of them (each proxy appends the address it saw)."""

from typing import Any

import pytest
import uvicorn
from pydantic import ValidationError

from gateway.settings import Settings
from shared.cli import server_options
from shared.settings import ServiceSettings

SECRET = "unit-Z8qW3eR7tY1uI5oP9aS2dF6gH0jK4lXcVbNm"


class BehindTheGateway(ServiceSettings):
    """Any service's settings (auth, chat, ...): the base's defaults."""


async def resolved(settings: ServiceSettings, peer: str, *forwarded_for: str) -> str:
    """The client address the app sees for a request from ``peer`` with these headers."""
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["client"] = scope["client"]

    config = uvicorn.Config(app, **server_options(settings))
    config.load()
    scope = {
        "type": "http",
        "scheme": "http",
        "client": (peer, 50000),
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded_for],
    }
    await config.loaded_app(scope, None, None)
    return seen["client"][0]


def gateway(forwarded_allow_ips: str | None = None) -> Settings:
    values = {} if forwarded_allow_ips is None else {"forwarded_allow_ips": forwarded_allow_ips}
    return Settings(_env_file=None, jwt_secret=SECRET, **values)


async def test_the_gateway_believes_no_one_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    settings = gateway()
    assert settings.forwarded_allow_ips == ""
    # A client on the gateway's own machine cannot pick its address either.
    assert await resolved(settings, "127.0.0.1", "198.51.100.7") == "127.0.0.1"
    assert await resolved(settings, "203.0.113.9", "198.51.100.7") == "203.0.113.9"


async def test_behind_trusted_proxies_the_right_most_untrusted_address_is_the_client() -> None:
    settings = gateway("10.0.0.0/8, 192.0.2.1")
    # The client wrote the first entry itself; the load balancer (10.1.2.3) appended the
    # address it saw, and an inner proxy (192.0.2.1) appended the balancer's.
    chain = "198.51.100.7, 203.0.113.9, 10.1.2.3"
    assert await resolved(settings, "192.0.2.1", chain) == "203.0.113.9"
    assert await resolved(settings, "10.200.0.1", "198.51.100.7", "203.0.113.9") == "203.0.113.9"
    # A peer outside the list is the client, whatever it claims.
    assert await resolved(settings, "192.0.2.2", chain) == "192.0.2.2"


async def test_ipv6_networks_are_trusted_too() -> None:
    settings = gateway("fd00::/8")
    assert await resolved(settings, "fd00::1", "2001:db8::7, fd00::2") == "2001:db8::7"


async def test_services_behind_the_gateway_believe_only_loopback_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    settings = BehindTheGateway(_env_file=None, jwt_secret=SECRET)
    assert await resolved(settings, "127.0.0.1", "203.0.113.9") == "203.0.113.9"
    assert await resolved(settings, "::1", "203.0.113.9") == "203.0.113.9"
    assert await resolved(settings, "192.0.2.5", "203.0.113.9") == "192.0.2.5"


@pytest.mark.parametrize("value", ["10.0.0.0/33", "10.0.0.1/8", "gateway.internal", "*"])
def test_the_gateway_refuses_a_trusted_proxy_list_it_cannot_read_or_that_trusts_all(
    value: str,
) -> None:
    # uvicorn would silently take the first three as literals that never match; with "*" it
    # would believe every client's own X-Forwarded-For.
    with pytest.raises(ValidationError, match="FORWARDED_ALLOW_IPS"):
        gateway(value)
