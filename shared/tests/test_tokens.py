import base64
import json
import time

import jwt
import pytest

from shared.tokens import (
    Claims,
    InvalidToken,
    bearer_token,
    is_revoked,
    issue_access_token,
    verify_access_token,
)

SECRET = "s" * 40


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_issued_token_round_trips_with_all_required_claims():
    issued = issue_access_token(SECRET, "user-1", ttl_seconds=600, mobile_number="+917373737373")
    claims = verify_access_token(SECRET, issued.token)
    assert claims.user_id == "user-1"
    assert claims.jti == issued.jti
    assert claims.mobile_number == "+917373737373"
    assert claims.expires_at - claims.issued_at == pytest.approx(600, abs=1)
    assert issued.expires_in in (599, 600)
    # Clients of the Node service read the user id from its `id` claim.
    assert jwt.decode(issued.token, options={"verify_signature": False})["id"] == "user-1"


def test_tampered_payload_is_rejected():
    token = issue_access_token(SECRET, "user-1", ttl_seconds=600).token
    header, _payload, signature = token.split(".")
    forged = _b64({"sub": "admin", "iat": time.time(), "exp": time.time() + 600, "jti": "x"})
    with pytest.raises(InvalidToken):
        verify_access_token(SECRET, f"{header}.{forged}.{signature}")


def test_wrong_secret_is_rejected():
    token = issue_access_token("other-" + SECRET, "user-1", ttl_seconds=600).token
    with pytest.raises(InvalidToken, match="Invalid token"):
        verify_access_token(SECRET, token)


def test_alg_none_is_rejected():
    now = time.time()
    header = _b64({"alg": "none", "typ": "JWT"})
    payload = _b64({"sub": "user-1", "iat": now, "exp": now + 600, "jti": "j"})
    with pytest.raises(InvalidToken):
        verify_access_token(SECRET, f"{header}.{payload}.")


def test_other_hmac_algorithm_is_rejected():
    now = time.time()
    token = jwt.encode(
        {"sub": "u", "iat": now, "exp": now + 600, "jti": "j"}, SECRET * 2, algorithm="HS512"
    )
    with pytest.raises(InvalidToken):
        verify_access_token(SECRET * 2, token)


def test_expired_token_is_rejected_with_expiry_message():
    token = issue_access_token(SECRET, "user-1", ttl_seconds=60, now=time.time() - 3600).token
    with pytest.raises(InvalidToken, match="expired"):
        verify_access_token(SECRET, token)


@pytest.mark.parametrize("missing", ["sub", "iat", "exp", "jti"])
def test_token_without_a_required_claim_is_rejected(missing):
    now = time.time()
    claims = {"sub": "u", "iat": now, "exp": now + 600, "jti": "j"}
    del claims[missing]
    with pytest.raises(InvalidToken):
        verify_access_token(SECRET, jwt.encode(claims, SECRET, algorithm="HS256"))


def test_garbage_is_rejected():
    with pytest.raises(InvalidToken):
        verify_access_token(SECRET, "not-a-jwt")


def test_revocation_compares_whole_milliseconds():
    issued = issue_access_token(SECRET, "u", ttl_seconds=600, now=1000.1234)
    claims = Claims(user_id="u", issued_at=issued.issued_at, expires_at=0, jti="j")
    assert not is_revoked(claims, None)
    assert not is_revoked(claims, 1000.123)  # revoked at the same millisecond it was issued
    assert is_revoked(claims, 1000.124)
    assert not is_revoked(claims, 999.0)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token_parsing(header, expected):
    assert bearer_token(header) == expected


def test_a_token_verified_once_is_answered_from_the_cache_while_it_lives(monkeypatch):
    issued = issue_access_token(SECRET, "user-cached", ttl_seconds=120)
    first = verify_access_token(SECRET, issued.token)
    calls = []
    monkeypatch.setattr("shared.tokens._decode", lambda *a: calls.append(a))
    assert verify_access_token(SECRET, issued.token) is first
    assert calls == []


def test_a_cached_token_is_checked_again_once_past_its_expiry(monkeypatch):
    issued = issue_access_token(SECRET, "user-expiring", ttl_seconds=60)
    verify_access_token(SECRET, issued.token)
    later = time.time() + 60 + 31  # past exp and the leeway
    monkeypatch.setattr("shared.tokens.time.time", lambda: later)

    def pyjwt_at_that_time(*_: str) -> Claims:
        raise InvalidToken("Your token has expired! Please log in again.")

    monkeypatch.setattr("shared.tokens._decode", pyjwt_at_that_time)
    with pytest.raises(InvalidToken, match="expired"):
        verify_access_token(SECRET, issued.token)


def test_the_cache_never_answers_for_another_secret():
    issued = issue_access_token(SECRET, "user-1", ttl_seconds=600)
    verify_access_token(SECRET, issued.token)
    with pytest.raises(InvalidToken):
        verify_access_token("another-" + SECRET, issued.token)


def test_the_cache_stays_bounded(monkeypatch):
    monkeypatch.setattr("shared.tokens.VERIFIED_CACHE_SIZE", 5)
    for i in range(20):
        verify_access_token(SECRET, issue_access_token(SECRET, f"u{i}", ttl_seconds=60).token)
    from shared import tokens

    assert len(tokens._verified) <= 5
