"""A person signing up and in through the public API (development codes come back in the
response): the one way the end-to-end suites get a user."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from shared.testing.fixtures import random_mobile_number


@dataclass(frozen=True)
class Account:
    number: str
    user_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def sign_up_and_in(api: httpx.AsyncClient, password: str | None = None) -> Account:
    """A new number, signed up and signed in with a code (``password`` is confirmed by it)."""
    number = random_mobile_number()
    body = {"mobileNumber": number} | ({"password": password} if password else {})
    signup = await api.post("/api/v1/auth/signup", json=body)
    assert signup.status_code == 201, signup.text
    sent = await api.post("/api/v1/auth/send-otp", json={"mobileNumber": number})
    assert sent.status_code == 200, sent.text
    proof = {"mobileNumber": number, "otp": sent.json()["otp"]}
    verified = await api.post("/api/v1/auth/verify-otp", json=proof | body)
    assert verified.status_code == 200, verified.text
    return Account(number, signup.json()["userId"], verified.json()["token"])
