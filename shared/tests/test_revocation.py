"""The gateway's signed word that it checked a token for revocation (X-Gateway-Checked)."""

import time

from shared.revocation import CHECKED_MAX_AGE_SECONDS, checked_by_gateway, gateway_checked

SECRET = "unit-Z8qW3eR7tY1uI5oP9aS2dF6gH0jK4lXcVbNm"
TOKEN = "header.payload.signature"


def test_the_gateways_fresh_word_for_the_same_token_is_believed():
    assert checked_by_gateway(SECRET, TOKEN, gateway_checked(SECRET, TOKEN))


def test_the_word_is_bound_to_the_token_and_the_secret():
    value = gateway_checked(SECRET, TOKEN)
    assert not checked_by_gateway(SECRET, TOKEN + "x", value)
    assert not checked_by_gateway("another-" + SECRET, TOKEN, value)


def test_an_old_or_future_word_is_not_believed():
    now = time.time()
    old = gateway_checked(SECRET, TOKEN, now=now - CHECKED_MAX_AGE_SECONDS - 1)
    future = gateway_checked(SECRET, TOKEN, now=now + 60)
    assert not checked_by_gateway(SECRET, TOKEN, old, now=now)
    assert not checked_by_gateway(SECRET, TOKEN, future, now=now)


def test_made_up_values_are_not_believed():
    now = str(int(time.time()))
    for value in ("", "x", f"{now}.", f"{now}.{'0' * 64}", "99999999999999999.ab", f"-{now}.ab"):
        assert not checked_by_gateway(SECRET, TOKEN, value)
