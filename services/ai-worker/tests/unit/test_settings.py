"""Worker settings: names as in the environment, and what is refused."""

import pytest
from pydantic import ValidationError

from ai_worker.settings import Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in (
        "APP_ENV",
        "NODE_ENV",
        "GOOGLE_GEMINI_API_KEY",
        "GEMINI_BASE_URL",
        "JWT_SECRET",
        "PORT",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_need_no_jwt_secret(monkeypatch):
    monkeypatch.setenv("GOOGLE_GEMINI_API_KEY", "real-key")
    settings = Settings(_env_file=None)
    assert settings.port == 8004
    assert settings.gemini_model == "gemini-2.5-flash"
    assert settings.gemini_base_url is None
    assert settings.ai_worker_concurrency == 64
    assert (settings.retry_max_attempts, settings.retry_budget_seconds) == (5, 45)
    assert (settings.claim_idle_seconds, settings.max_deliveries) == (60, 5)
    assert settings.shutdown_grace_seconds == 30


@pytest.mark.parametrize("app_env", ["production", "test"])
def test_api_key_is_required_without_a_simulator(monkeypatch, app_env):
    monkeypatch.setenv("APP_ENV", app_env)
    with pytest.raises(ValidationError, match="GOOGLE_GEMINI_API_KEY is required"):
        Settings(_env_file=None)


@pytest.mark.parametrize("app_env", ["development", "test"])
def test_a_base_url_stands_in_for_the_key_outside_production(monkeypatch, app_env):
    monkeypatch.setenv("APP_ENV", app_env)
    monkeypatch.setenv("GEMINI_BASE_URL", "http://127.0.0.1:8765")
    settings = Settings(_env_file=None)
    assert settings.google_gemini_api_key == "simulator"
    assert settings.gemini_base_url == "http://127.0.0.1:8765"


def test_a_blank_base_url_is_no_base_url(monkeypatch):
    monkeypatch.setenv("APP_ENV", "test")
    monkeypatch.setenv("GEMINI_BASE_URL", " ")
    with pytest.raises(ValidationError, match="GOOGLE_GEMINI_API_KEY is required"):
        Settings(_env_file=None)


def test_production_refuses_the_simulator_without_a_key(monkeypatch):
    """APP_ENV unset is production: a base URL no longer stands in for the key."""
    monkeypatch.setenv("GEMINI_BASE_URL", "http://127.0.0.1:8765")
    with pytest.raises(ValidationError, match="unset GEMINI_BASE_URL") as raised:
        Settings(_env_file=None)
    assert "GOOGLE_GEMINI_API_KEY" in str(raised.value)


def test_production_refuses_a_custom_endpoint_even_with_a_key(monkeypatch):
    monkeypatch.setenv("GOOGLE_GEMINI_API_KEY", "real-key")
    monkeypatch.setenv("GEMINI_BASE_URL", "https://gemini.example.net")
    with pytest.raises(ValidationError, match="GEMINI_BASE_URL") as raised:
        Settings(_env_file=None)
    assert "APP_ENV=production" in str(raised.value)


def test_production_without_a_key_says_what_to_set():
    with pytest.raises(ValidationError, match="GOOGLE_GEMINI_API_KEY is required") as raised:
        Settings(_env_file=None)
    assert "aistudio.google.com" in str(raised.value)


def test_worker_knobs_come_from_their_env_names(monkeypatch):
    monkeypatch.setenv("GOOGLE_GEMINI_API_KEY", "k")
    monkeypatch.setenv("AI_WORKER_CONCURRENCY", "8")
    monkeypatch.setenv("GEMINI_CHUNK_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("SYSTEM_INSTRUCTION", "Be kind.")
    settings = Settings(_env_file=None)
    assert settings.ai_worker_concurrency == 8
    assert settings.gemini_chunk_timeout_seconds == 2.5
    assert settings.system_instruction == "Be kind."


@pytest.mark.parametrize("seconds", ["0.5", "0"])
def test_claim_idle_below_one_second_is_refused(monkeypatch, seconds):
    monkeypatch.setenv("GOOGLE_GEMINI_API_KEY", "k")
    monkeypatch.setenv("CLAIM_IDLE_SECONDS", seconds)
    with pytest.raises(ValidationError, match="claim_idle_seconds"):
        Settings(_env_file=None)


@pytest.mark.parametrize("seconds", ["1", "60"])
def test_the_reply_lease_ends_well_before_an_entry_can_be_reclaimed(monkeypatch, seconds):
    from ai_worker.service import lease_ms

    monkeypatch.setenv("GOOGLE_GEMINI_API_KEY", "k")
    monkeypatch.setenv("CLAIM_IDLE_SECONDS", seconds)
    settings = Settings(_env_file=None)
    assert 0 < lease_ms(settings) * 3 <= settings.claim_idle_seconds * 1000
