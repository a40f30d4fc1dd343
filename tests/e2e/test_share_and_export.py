"""Share links and export through the gateway of the whole stack, as their users and an
attacker would use them: the page /s/{token} opens without logging in under its own CSP,
shows the chat as it was (later messages never appear), holds no user id, phone number or
internal id, escapes what the model and the user wrote, and is a 404 once revoked; tokens
are long and random; another user can neither share, revoke nor export your room (404,
like every chat route); export downloads Markdown or JSON."""

from __future__ import annotations

import re

import httpx
import pytest

from gateway.share_page import SHARE_CONTENT_SECURITY_POLICY
from shared.testing.accounts import Account, sign_up_and_in
from shared.testing.wait import eventually

pytestmark = pytest.mark.e2e

TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32): 256 random bits


class Owner:
    def __init__(self, api: httpx.AsyncClient, account: Account) -> None:
        self.api, self.account = api, account
        self.room_id = ""

    async def new_room(self, name: str) -> str:
        made = await self.api.post(
            "/api/v1/chatroom", json={"name": name}, headers=self.account.headers
        )
        assert made.status_code == 201, made.text
        self.room_id = made.json()["data"]["chatroom"]["id"]
        return self.room_id

    async def messages(self) -> list[dict]:
        room = await self.api.get(f"/api/v1/chatroom/{self.room_id}", headers=self.account.headers)
        assert room.status_code == 200, room.text
        return room.json()["data"]["chatroom"]["messages"]

    async def ask(self, content: str) -> dict:
        sent = await self.api.post(
            f"/api/v1/chatroom/{self.room_id}/message",
            json={"content": content},
            headers=self.account.headers,
        )
        assert sent.status_code == 201, sent.text
        reply_id = sent.json()["data"]["reply"]["id"]

        async def completed() -> bool:
            reply = next(m for m in await self.messages() if m["id"] == reply_id)
            return reply["status"] == "completed"

        await eventually(completed, timeout=30, interval=0.1, what="the reply")
        return next(m for m in await self.messages() if m["id"] == reply_id)

    async def share(self) -> dict:
        made = await self.api.post(
            f"/api/v1/chatroom/{self.room_id}/share", headers=self.account.headers
        )
        assert made.status_code == 201, made.text
        return made.json()["data"]["share"]


@pytest.fixture
async def owner(api) -> Owner:
    person = Owner(api, await sign_up_and_in(api))
    await person.new_room("Yoga notes")
    await person.ask("What is <b>yoga</b>? <script>alert(1)</script>")
    return person


async def test_a_shared_chat_opens_without_login_as_it_was_and_not_once_revoked(
    api, owner, stack, traces
) -> None:
    link = await owner.share()
    assert TOKEN.fullmatch(link["token"])
    assert link["path"] == f"/s/{link['token']}"

    page = await api.get(link["path"])  # no Authorization
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == SHARE_CONTENT_SECURITY_POLICY
    assert page.headers["cache-control"] == "no-store"
    assert "<h1>Yoga notes</h1>" in page.text
    # The prompt, and the simulator's reply that quotes it, both escaped.
    assert page.text.count("What is &lt;b&gt;yoga&lt;/b&gt;? &lt;script&gt;alert(1)") == 2
    assert "<script>alert" not in page.text and "<b>" not in page.text

    # No user id, phone number (in any form) or internal id, in the page or the JSON.
    snapshot = await api.get(f"/api/v1/shared/{link['token']}")
    assert snapshot.status_code == 200
    number = owner.account.number
    secrets_ = [owner.account.user_id, number, number.removeprefix("+"), number[3:]]
    secrets_ += [owner.room_id, *(m["id"] for m in await owner.messages())]
    for text in (page.text, snapshot.text):
        for secret in secrets_:
            assert secret not in text

    # A message after the link was made is not in it.
    await owner.ask("A later question about breathing")
    again = await api.get(link["path"])
    assert again.status_code == 200
    assert "breathing" not in again.text
    assert again.text.count('class="msg ') == 2

    revoked = await api.delete(
        f"/api/v1/chatroom/{owner.room_id}/share", headers=owner.account.headers
    )
    assert revoked.status_code == 204
    gone = await api.get(link["path"])
    assert gone.status_code == 404
    assert gone.headers["content-security-policy"] == SHARE_CONTENT_SECURITY_POLICY
    assert "Yoga" not in gone.text
    assert (await api.get(f"/api/v1/shared/{link['token']}")).status_code == 404

    # The token opens the chat: no log holds it, they name the route's template instead.
    logs = {name: stack.log_dir / f"{name}.log" for name in ("gateway", "chat")}

    def logged(name: str, template: str) -> bool:
        return template in logs[name].read_text(errors="replace")

    async def both_logged() -> bool:
        return logged("gateway", "/s/{token}") and logged("chat", "/api/v1/shared/{token}")

    await eventually(both_logged, timeout=10, what="the share requests in the logs")
    for log in stack.log_dir.glob("*.log"):
        assert link["token"] not in log.read_text(errors="replace"), log.name

    # Nor does any span's attribute (the stack exports its traces to the test).
    def traced() -> bool:
        served = {(s.service, s.name) for s in traces.spans()}
        return {
            ("gateway", "GET /s/{token}"),
            ("gateway", "GET /api/v1/shared/{token}"),
            ("chat", "GET /api/v1/shared/{token}"),
        } <= served

    await eventually(traced, timeout=10, what="the share requests' spans")
    for span in traces.spans():
        assert all(link["token"] not in str(v) for v in span.attributes.values()), span


async def test_tokens_are_long_random_and_a_new_link_replaces_the_old(api, owner) -> None:
    tokens = [(await owner.share())["token"] for _ in range(6)]
    assert len(set(tokens)) == 6
    assert all(TOKEN.fullmatch(t) for t in tokens)
    # Their characters are spread out: no shared prefix, no counter.
    assert len({t[:4] for t in tokens}) == 6
    statuses = [(await api.get(f"/s/{t}")).status_code for t in tokens]
    assert statuses == [404] * 5 + [200]
    # Guesses near a real token are 404 like any other.
    real = tokens[-1]
    for guess in (real[:-1] + ("A" if real[-1] != "A" else "B"), real[:-1], real + "A"):
        assert (await api.get(f"/s/{guess}")).status_code == 404


async def test_another_user_cannot_share_revoke_or_export_your_room(api, owner) -> None:
    link = await owner.share()
    stranger = await sign_up_and_in(api)
    base = f"/api/v1/chatroom/{owner.room_id}"
    for method, path in [
        ("POST", f"{base}/share"),
        ("DELETE", f"{base}/share"),
        ("GET", f"{base}/export?format=md"),
        ("GET", f"{base}/export?format=json"),
    ]:
        response = await api.request(method, path, headers=stranger.headers)
        assert response.status_code == 404, (method, path)
        assert response.json()["code"] == "chatroom_not_found"
        anonymous = await api.request(method, path)
        assert anonymous.status_code == 401, (method, path)
    assert (await api.get(link["path"])).status_code == 200  # the owner's link still works


async def test_export_downloads_markdown_or_json(api, owner) -> None:
    base = f"/api/v1/chatroom/{owner.room_id}/export"
    markdown = await api.get(base, headers=owner.account.headers)
    assert markdown.status_code == 200
    assert markdown.headers["content-type"] == "text/markdown; charset=utf-8"
    assert markdown.headers["content-disposition"] == 'attachment; filename="yoga-notes.md"'
    assert markdown.text.startswith("# Yoga notes\n")
    assert re.findall(r"^## (You|Gemini) · ", markdown.text, re.M) == ["You", "Gemini"]
    assert "What is <b>yoga</b>? <script>alert(1)</script>" in markdown.text  # a file, as written

    as_json = await api.get(f"{base}?format=json", headers=owner.account.headers)
    assert as_json.status_code == 200
    assert as_json.headers["content-disposition"] == 'attachment; filename="yoga-notes.json"'
    body = as_json.json()
    assert body["chatroom"]["name"] == "Yoga notes"
    assert [m["role"] for m in body["messages"]] == ["USER", "GEMINI"]

    wrong = await api.get(f"{base}?format=pdf", headers=owner.account.headers)
    assert wrong.status_code == 400
    assert wrong.headers["content-type"] == "application/json"
    assert wrong.json()["errors"][0]["field"] == "format"
