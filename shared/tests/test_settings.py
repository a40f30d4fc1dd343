import pytest
from pydantic import ValidationError

from shared.settings import ServiceSettings


def make(**env: str) -> ServiceSettings:
    return ServiceSettings(_env_file=None, **env)


def test_short_jwt_secret_is_refused_outside_development():
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        make(app_env="production", jwt_secret="short")


def test_short_jwt_secret_is_accepted_in_development():
    assert make(app_env="development", jwt_secret="short").jwt_secret == "short"


def test_missing_jwt_secret_is_refused_everywhere():
    with pytest.raises(ValidationError, match="JWT_SECRET is required"):
        make(app_env="development", jwt_secret="")


def test_node_env_is_an_alias_of_app_env(monkeypatch):
    monkeypatch.delenv("APP_ENV", raising=False)
    monkeypatch.setenv("NODE_ENV", "production")
    monkeypatch.setenv("JWT_SECRET", "k" * 32)
    assert ServiceSettings(_env_file=None).app_env == "production"


def test_unknown_app_env_is_refused(monkeypatch):
    monkeypatch.setenv("APP_ENV", "staging-ish")
    monkeypatch.setenv("JWT_SECRET", "k" * 32)
    with pytest.raises(ValidationError):
        ServiceSettings(_env_file=None)
