"""Billing settings: production (the default) refuses the Stripe simulator, a missing
secret key and a weak webhook secret, and says what to set."""

import pytest
from pydantic import ValidationError

from billing.settings import Settings
from shared.testing.fixtures import TEST_JWT_SECRET

# Shaped like Stripe's: prefix and 32 random characters.
STRONG_WEBHOOK_SECRET = "whsec_Lq3Zr8Vt1Wm6Kx0Pn5Hc9Bd2Fy7Gs4Ja"
SIMULATOR = "http://127.0.0.1:12111"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in (
        "APP_ENV",
        "NODE_ENV",
        "JWT_SECRET",
        "STRIPE_SECRET_KEY",
        "STRIPE_API_BASE",
        "STRIPE_WEBHOOK_SECRET",
        "STRIPE_PRO_PRICE_ID",
        "CHECKOUT_SESSION_TTL_MINUTES",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JWT_SECRET", TEST_JWT_SECRET)


def settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


def test_production_with_stripe_itself_starts():
    done = settings(stripe_secret_key="sk_live_abc", stripe_webhook_secret=STRONG_WEBHOOK_SECRET)
    assert done.is_production
    assert (done.stripe_api_base, done.stripe_secret_key) == (None, "sk_live_abc")
    assert done.checkout_session_ttl_minutes == 60


def test_production_refuses_the_simulator(monkeypatch):
    monkeypatch.setenv("STRIPE_API_BASE", SIMULATOR)
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_live_abc")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", STRONG_WEBHOOK_SECRET)
    with pytest.raises(ValidationError, match="unset STRIPE_API_BASE") as raised:
        Settings(_env_file=None)
    assert "simulator" in str(raised.value)


def test_production_refuses_a_missing_secret_key():
    with pytest.raises(ValidationError, match="STRIPE_SECRET_KEY is required in production"):
        settings(stripe_webhook_secret=STRONG_WEBHOOK_SECRET)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("whsec_x", "must be at least 32 bytes"),
        ("whsec_replace_me_with_the_real_signing_secret", "is a placeholder"),
        ("whsec_" + "s" * 40, "has too little entropy"),
    ],
)
@pytest.mark.parametrize("app_env", ["production", "test"])
def test_a_weak_webhook_secret_is_refused_outside_development(app_env, secret, problem):
    with pytest.raises(ValidationError, match=f"STRIPE_WEBHOOK_SECRET {problem}") as raised:
        settings(
            app_env=app_env,
            stripe_secret_key="sk_test_abc",
            stripe_webhook_secret=secret,
        )
    assert "signing secret" in str(raised.value)


def test_a_missing_webhook_secret_says_where_to_find_it():
    with pytest.raises(ValidationError, match="STRIPE_WEBHOOK_SECRET is required") as raised:
        settings(app_env="test", stripe_api_base=SIMULATOR)
    assert "signing secret" in str(raised.value)


def test_outside_production_the_simulator_needs_no_key():
    done = settings(
        app_env="test", stripe_api_base=SIMULATOR, stripe_webhook_secret=STRONG_WEBHOOK_SECRET
    )
    assert done.stripe_secret_key == "sk_test_simulator"


def test_development_takes_any_webhook_secret():
    done = settings(
        app_env="development",
        jwt_secret="short",
        stripe_api_base=SIMULATOR,
        stripe_webhook_secret="whsec_x",
    )
    assert done.stripe_webhook_secret == "whsec_x"


@pytest.mark.parametrize("minutes", ["30", "34", "1436", "1440"])
def test_a_checkout_ttl_stripe_could_refuse_is_refused(monkeypatch, minutes):
    monkeypatch.setenv("CHECKOUT_SESSION_TTL_MINUTES", minutes)
    with pytest.raises(ValidationError, match="checkout_session_ttl_minutes"):
        settings(
            app_env="test", stripe_api_base=SIMULATOR, stripe_webhook_secret=STRONG_WEBHOOK_SECRET
        )
