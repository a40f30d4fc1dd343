import pytest
from pydantic import ValidationError

from gateway.settings import Settings

SECRET = "unit-Z8qW3eR7tY1uI5oP9aS2dF6gH0jK4lXcVbNm"


def test_upstreams_parse_from_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_UPSTREAMS", " chat, billing ,,chat")
    monkeypatch.setenv("CHAT_URL", "http://chat:8002/")
    settings = Settings(_env_file=None, jwt_secret=SECRET)
    assert settings.gateway_upstreams == ("chat", "billing")
    assert settings.upstream_url("chat") == "http://chat:8002"


def test_defaults() -> None:
    settings = Settings(_env_file=None, jwt_secret=SECRET)
    assert settings.gateway_upstreams == ("auth", "chat", "billing")
    assert settings.port == 8000
    assert settings.upstream_url("billing") == "http://127.0.0.1:8003"
    assert settings.token_state_cache_seconds == 86_400
    assert (settings.upstream_pool_size, settings.stream_pool_size) == (100, 1000)


def test_unknown_upstream_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_UPSTREAMS", "auth,payments")
    with pytest.raises(ValidationError, match="unknown upstream"):
        Settings(_env_file=None, jwt_secret=SECRET)
