import pytest
from pydantic import ValidationError

from auth import otp
from auth.phone import InvalidPhoneNumber, mask, normalise
from auth.settings import Settings

SECRET = "unit-Z8qW3eR7tY1uI5oP9aS2dF6gH0jK4lXcVbNm"


@pytest.mark.parametrize("delivery", ["response", "log"])
def test_delivery_that_exposes_codes_is_refused_in_production(delivery):
    with pytest.raises(ValidationError, match="production needs OTP_DELIVERY=webhook"):
        Settings(_env_file=None, app_env="production", jwt_secret=SECRET, otp_delivery=delivery)


def test_production_needs_an_explicit_delivery():
    with pytest.raises(ValidationError, match="OTP_DELIVERY must be set in production"):
        Settings(_env_file=None, app_env="production", jwt_secret=SECRET)
    settings = Settings(
        _env_file=None,
        app_env="production",
        jwt_secret=SECRET,
        otp_delivery="webhook",
        otp_webhook_url="https://sms.example/send",
    )
    assert settings.otp_delivery == "webhook"


def test_delivery_defaults_to_response_in_development_and_log_in_tests():
    assert Settings(_env_file=None, app_env="development", jwt_secret=SECRET).otp_delivery == (
        "response"
    )
    assert Settings(_env_file=None, app_env="test", jwt_secret=SECRET).otp_delivery == "log"


def test_webhook_delivery_needs_a_url():
    with pytest.raises(ValidationError, match="OTP_WEBHOOK_URL"):
        Settings(_env_file=None, app_env="test", jwt_secret=SECRET, otp_delivery="webhook")


def test_otp_expiry_is_capped_at_ten_minutes():
    with pytest.raises(ValidationError):
        Settings(_env_file=None, app_env="test", jwt_secret=SECRET, otp_expiration_minutes=60)


def test_codes_are_six_digits_and_vary():
    codes = {otp.new_code() for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert len(codes) > 150


def test_code_hash_is_bound_to_the_challenge():
    h = otp.hash_code(SECRET, "challenge-1", "123456")
    assert otp.matches(SECRET, "challenge-1", "123456", h)
    assert not otp.matches(SECRET, "challenge-2", "123456", h)
    assert not otp.matches(SECRET, "challenge-1", "123457", h)
    assert not otp.matches("x" + SECRET, "challenge-1", "123456", h)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("7373737373", "+917373737373"),
        ("+91 73737 37373", "+917373737373"),
        ("073737 37373", "+917373737373"),
        ("+1 415 555 2671", "+14155552671"),
    ],
)
def test_numbers_are_normalised_to_e164(raw, expected):
    assert normalise(raw, "IN") == expected


@pytest.mark.parametrize("raw", ["", "12345", "hello", "+91 1234", "+911123456789"])
def test_invalid_or_non_mobile_numbers_are_refused(raw):
    with pytest.raises(InvalidPhoneNumber):
        normalise(raw, "IN")


def test_mask_hides_the_middle():
    assert mask("+917373737373") == "+91******7373"
