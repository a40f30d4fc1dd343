import pytest
from pydantic import ValidationError

from shared.secrets import weakness
from shared.settings import ServiceSettings

STRONG = "Hq3V9sKd2LmX7pRt5WzN8bYc4FgJ6uAe1ToPi0QwErTy"


def make(**env: str) -> ServiceSettings:
    return ServiceSettings(_env_file=None, **env)


def test_production_is_the_default(monkeypatch):
    for name in ("APP_ENV", "NODE_ENV"):
        monkeypatch.delenv(name, raising=False)
    settings = make(jwt_secret=STRONG)
    assert settings.app_env == "production"
    assert settings.is_production


def test_short_jwt_secret_is_refused_outside_development():
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        make(app_env="production", jwt_secret="short")


@pytest.mark.parametrize(
    "secret",
    [
        # The values the repository's own examples put there.
        "replace-with-at-least-32-random-bytes",
        "development-only-jwt-secret-do-not-use-elsewhere",
        "please-change-me-please-change-me-please",
        "your-secret-goes-here-0123456789abcdefgh",
    ],
)
def test_placeholder_jwt_secret_is_refused_outside_development(secret):
    for env in ("production", "test"):
        with pytest.raises(ValidationError, match="placeholder"):
            make(app_env=env, jwt_secret=secret)


@pytest.mark.parametrize("secret", ["k" * 32, "test-secret-" + "x" * 40, "abab" * 12])
def test_low_entropy_jwt_secret_is_refused_outside_development(secret):
    with pytest.raises(ValidationError, match="too little entropy"):
        make(app_env="production", jwt_secret=secret)


def test_the_refusal_says_how_to_make_a_good_secret():
    with pytest.raises(ValidationError, match="openssl rand"):
        make(app_env="production", jwt_secret="k" * 32)


def test_generated_secrets_are_accepted():
    import secrets

    for _ in range(200):
        assert weakness(secrets.token_urlsafe(48)) is None
        assert weakness(secrets.token_hex(32)) is None


def test_weak_jwt_secret_is_accepted_in_development():
    assert make(app_env="development", jwt_secret="short").jwt_secret == "short"


def test_missing_jwt_secret_is_refused_everywhere():
    with pytest.raises(ValidationError, match="JWT_SECRET is required"):
        make(app_env="development", jwt_secret="")


def test_node_env_is_an_alias_of_app_env(monkeypatch):
    monkeypatch.delenv("APP_ENV", raising=False)
    monkeypatch.setenv("NODE_ENV", "test")
    monkeypatch.setenv("JWT_SECRET", STRONG)
    assert ServiceSettings(_env_file=None).app_env == "test"


def test_unknown_app_env_is_refused(monkeypatch):
    monkeypatch.setenv("APP_ENV", "staging-ish")
    monkeypatch.setenv("JWT_SECRET", STRONG)
    with pytest.raises(ValidationError):
        ServiceSettings(_env_file=None)


class Public(ServiceSettings):
    port_from_env_file = True


def test_env_file_port_is_the_gateways_only(tmp_path, monkeypatch):
    """`.env` sits beside every process `make run` starts: its PORT (the public port) must
    not move auth, chat, billing or the ai-worker onto the gateway's port."""
    env_file = tmp_path / ".env"
    env_file.write_text(f"PORT=8555\nJWT_SECRET={STRONG}\nLOG_LEVEL=DEBUG\n")
    monkeypatch.delenv("PORT", raising=False)
    service = ServiceSettings(_env_file=env_file)
    assert service.port == 8000  # its default, not the file's
    assert service.log_level == "DEBUG"  # the rest of the file applies
    assert Public(_env_file=env_file).port == 8555  # the gateway takes it
    monkeypatch.setenv("PORT", "9001")  # the real environment: `make run`, the image
    assert ServiceSettings(_env_file=env_file).port == 9001
    assert Public(_env_file=env_file).port == 9001
