"""The fuzzed user and the merged OpenAPI document of the running stack (``stack``)."""

from __future__ import annotations

import time

import httpx
import pytest
import schemathesis

from dev.stack import Stack
from shared.testing.fixtures import random_mobile_number
from shared.tokens import issue_access_token


class FuzzUser:
    """A user signed up through the gateway, with the token it got from verify-otp.

    Some operations (logout, change-password) revoke every token issued before them, so
    each case gets a token issued just before it, for the same user, signed like auth's.
    It owns chatrooms with a reply, so that generated requests reach existing resources
    too (``path_parameters``): one room for DELETE, one for everything else, shared once
    its reply completed (the link's token).
    """

    def __init__(self, user_id: str, mobile_number: str, token: str, jwt_secret: str) -> None:
        self.user_id = user_id
        self.mobile_number = mobile_number
        self.token = token
        self.jwt_secret = jwt_secret
        self.room_id = ""
        self.doomed_room_id = ""
        self.reply_id = ""
        self.share_token = ""

    def path_parameters(self, method: str) -> dict[str, str]:
        room = self.doomed_room_id if method.upper() == "DELETE" else self.room_id
        return {"chatroom_id": room, "reply_id": self.reply_id, "token": self.share_token}

    def headers(self) -> dict[str, str]:
        token = issue_access_token(
            self.jwt_secret, self.user_id, ttl_seconds=3600, mobile_number=self.mobile_number
        ).token
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def fuzz_user(stack: Stack, jwt_secret: str) -> FuzzUser:
    number = random_mobile_number()
    with httpx.Client(base_url=stack.url("gateway"), timeout=15) as client:
        created = client.post("/api/v1/auth/signup", json={"mobileNumber": number})
        assert created.status_code == 201, created.text
        otp = client.post("/api/v1/auth/send-otp", json={"mobileNumber": number}).json()["otp"]
        verified = client.post("/api/v1/auth/verify-otp", json={"mobileNumber": number, "otp": otp})
        assert verified.status_code == 200, verified.text
        token = verified.json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        me = client.get("/api/v1/auth/me", headers=auth)
        assert me.status_code == 200, me.text
        user = FuzzUser(created.json()["userId"], number, token, jwt_secret)
        rooms = [
            client.post("/api/v1/chatroom", json={"name": name}, headers=auth)
            for name in ("fuzzed", "deleted by the fuzzer")
        ]
        assert all(r.status_code == 201 for r in rooms), [r.text for r in rooms]
        user.room_id, user.doomed_room_id = (r.json()["data"]["chatroom"]["id"] for r in rooms)
        sent = client.post(
            f"/api/v1/chatroom/{user.room_id}/message", json={"content": "hi"}, headers=auth
        )
        assert sent.status_code == 201, sent.text
        user.reply_id = sent.json()["data"]["reply"]["id"]
        user.share_token = share_when_replied(client, user.room_id, auth)
    return user


def share_when_replied(client: httpx.Client, room_id: str, auth: dict[str, str]) -> str:
    """The token of a link to the room, made once its reply completed (within 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        shared = client.post(f"/api/v1/chatroom/{room_id}/share", headers=auth)
        if shared.status_code == 201:
            return str(shared.json()["data"]["share"]["token"])
        assert shared.status_code == 409 and time.monotonic() < deadline, shared.text
        time.sleep(0.1)


@pytest.fixture(scope="session")
def api_schema(stack: Stack) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{stack.url('gateway')}/openapi.json", timeout=15)
