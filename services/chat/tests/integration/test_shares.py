"""Share links and export: a snapshot read without logging in, with no ids or user in it,
that later messages never reach and that a revoke or a delete turns into a 404; the token
random, long, and stored only hashed; another user's room a 404 for every route; export as
Markdown and JSON."""

import asyncio
import hashlib
import json
import re

import psycopg
import pytest

from shared.testing.wait import eventually


async def exchange(api, bus, user, room_id: str, prompt: str, answer: str) -> dict:
    """A prompt and its completed reply; returns the reply."""
    sent = await api.send(user, room_id, prompt)
    assert sent.status_code == 201, sent.text
    reply_id = sent.json()["data"]["reply"]["id"]
    await bus.complete(user, room_id, reply_id, answer)

    async def stored() -> dict | None:
        messages = (await api.room(user, room_id))["messages"]
        return next((m for m in messages if m["id"] == reply_id and m["content"]), None)

    await eventually(stored, what="the completed reply")
    reply = await stored()
    assert reply is not None
    return reply


async def share(client, user, room_id: str):
    return await client.post(f"/api/v1/chatroom/{room_id}/share", headers=user.headers)


async def shared(client, token: str):
    return await client.get(f"/api/v1/shared/{token}")  # no Authorization header


@pytest.fixture
async def room(api, bus, user) -> dict:
    made = await api.new_room(user, "Yoga notes")
    await exchange(api, bus, user, made["id"], "What is yoga?", "Yoga is a practice.")
    return made


async def test_a_share_link_opens_without_login_and_shows_no_ids_or_user(client, user, room):
    created = await share(client, user, room["id"])
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "success"
    link = body["data"]["share"]
    token = link["token"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)  # secrets.token_urlsafe(32): 256 bits
    assert link["path"] == f"/s/{token}"
    assert link["messageCount"] == 2

    response = await shared(client, token)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    snapshot = response.json()["data"]["share"]
    assert snapshot["title"] == "Yoga notes"
    assert [(m["role"], m["content"]) for m in snapshot["messages"]] == [
        ("USER", "What is yoga?"),
        ("GEMINI", "Yoga is a practice."),
    ]
    room_detail = (await client.get(f"/api/v1/chatroom/{room['id']}", headers=user.headers)).json()
    ids = [
        str(user.id),
        room["id"],
        *(m["id"] for m in room_detail["data"]["chatroom"]["messages"]),
    ]
    for secret in ids:
        assert secret not in response.text


async def test_later_messages_and_a_pending_reply_are_not_in_the_snapshot(
    api, bus, client, user, room
):
    await api.send(user, room["id"], "A prompt still being answered")
    token = (await share(client, user, room["id"])).json()["data"]["share"]["token"]
    # The pending reply's prompt is after the last completed reply: left out.
    first = (await shared(client, token)).json()["data"]["share"]["messages"]
    assert [m["content"] for m in first] == ["What is yoga?", "Yoga is a practice."]

    room_now = await api.room(user, room["id"])
    pending = room_now["messages"][-1]
    await bus.complete(user, room["id"], pending["id"], "A later answer")
    await bus.handled()
    await exchange(api, bus, user, room["id"], "One more", "And another answer")
    after = (await shared(client, token)).json()["data"]["share"]["messages"]
    assert after == first


async def test_revoke_and_delete_make_the_link_404(api, bus, client, user, room):
    token = (await share(client, user, room["id"])).json()["data"]["share"]["token"]
    revoked = await client.delete(f"/api/v1/chatroom/{room['id']}/share", headers=user.headers)
    assert revoked.status_code == 204
    gone = await shared(client, token)
    assert gone.status_code == 404
    assert gone.json() == {
        "status": "fail",
        "message": "This link does not exist or was revoked.",
        "code": "share_not_found",
    }
    # Revoking again (nothing live) is fine.
    again = await client.delete(f"/api/v1/chatroom/{room['id']}/share", headers=user.headers)
    assert again.status_code == 204

    token = (await share(client, user, room["id"])).json()["data"]["share"]["token"]
    assert (await shared(client, token)).status_code == 200
    await client.delete(f"/api/v1/chatroom/{room['id']}", headers=user.headers)
    assert (await shared(client, token)).status_code == 404


async def test_sharing_again_replaces_the_link(client, user, room, chat_database_url):
    first = (await share(client, user, room["id"])).json()["data"]["share"]["token"]
    second = (await share(client, user, room["id"])).json()["data"]["share"]["token"]
    assert first != second
    assert (await shared(client, first)).status_code == 404
    assert (await shared(client, second)).status_code == 200


async def test_concurrent_shares_leave_one_live_link(client, user, room, chat_database_url):
    made = await asyncio.gather(*(share(client, user, room["id"]) for _ in range(8)))
    assert [r.status_code for r in made] == [201] * 8
    live = [
        t
        for r in made
        if (await shared(client, t := r.json()["data"]["share"]["token"])).status_code == 200
    ]
    assert len(live) == 1
    with psycopg.connect(chat_database_url) as conn:
        count = conn.execute(
            "SELECT count(*) FROM chat.shares WHERE chatroom_id = %s AND revoked_at IS NULL",
            (room["id"],),
        ).fetchone()
    assert count == (1,)


async def test_the_database_keeps_only_the_tokens_hash(client, user, room, chat_database_url):
    token = (await share(client, user, room["id"])).json()["data"]["share"]["token"]
    with psycopg.connect(chat_database_url) as conn:
        rows = conn.execute(
            "SELECT to_jsonb(s)::text, token_hash FROM chat.shares s WHERE chatroom_id = %s",
            (room["id"],),
        ).fetchall()
    [(row_text, token_hash)] = rows
    assert token not in row_text
    assert bytes(token_hash) == hashlib.sha256(token.encode()).digest()


async def test_malformed_unknown_and_overlong_tokens(client, user, room):
    await share(client, user, room["id"])
    for token in ["nope", "A" * 43, "a" * 42 + "."]:
        response = await shared(client, token)
        assert response.status_code == 404, token
        assert response.json()["code"] == "share_not_found"
    too_long = await shared(client, "A" * 65)
    assert too_long.status_code == 400
    assert too_long.json()["status"] == "fail"


async def test_nothing_to_share_before_a_completed_reply_is_409(api, client, user):
    empty = await api.new_room(user)
    response = await share(client, user, empty["id"])
    assert response.status_code == 409
    assert response.json()["code"] == "nothing_to_share"
    await api.send(user, empty["id"], "pending")
    assert (await share(client, user, empty["id"])).status_code == 409


async def test_another_users_room_is_404_for_share_revoke_and_export(client, make_user, user, room):
    token = (await share(client, user, room["id"])).json()["data"]["share"]["token"]
    stranger = make_user()
    base = f"/api/v1/chatroom/{room['id']}"
    attempts = [
        await client.post(f"{base}/share", headers=stranger.headers),
        await client.delete(f"{base}/share", headers=stranger.headers),
        await client.get(f"{base}/export?format=json", headers=stranger.headers),
        await client.get(f"{base}/export?format=md", headers=stranger.headers),
    ]
    for response in attempts:
        assert response.status_code == 404, response.request.url
        assert response.json()["code"] == "chatroom_not_found"
    assert (await shared(client, token)).status_code == 200  # the owner's link still works
    for method in ("POST", "DELETE"):
        assert (await client.request(method, f"{base}/share")).status_code == 401
    assert (await client.get(f"{base}/export")).status_code == 401


async def test_export_as_markdown_has_a_heading_per_turn(api, bus, client, user, room):
    await exchange(api, bus, user, room["id"], "How do I start?", "Slowly.\n\n- breathe")
    response = await client.get(f"/api/v1/chatroom/{room['id']}/export", headers=user.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="yoga-notes.md"'
    text = response.text
    assert text.startswith("# Yoga notes\n")
    headings = re.findall(r"^## (You|Gemini) · \d{4}-\d\d-\d\d \d\d:\d\d UTC$", text, re.M)
    assert headings == ["You", "Gemini", "You", "Gemini"]
    assert "Slowly.\n\n- breathe" in text
    assert "4 messages." in text


async def test_export_as_json_is_the_room_and_its_messages(api, client, user, room):
    await api.send(user, room["id"], "unanswered")
    response = await client.get(
        f"/api/v1/chatroom/{room['id']}/export?format=json", headers=user.headers
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"] == 'attachment; filename="yoga-notes.json"'
    body = json.loads(response.text)
    assert "status" not in body  # a file, not an envelope
    assert body["chatroom"]["id"] == room["id"]
    assert body["truncated"] is False
    assert [(m["role"], m["status"]) for m in body["messages"]] == [
        ("USER", "completed"),
        ("GEMINI", "completed"),
        ("USER", "completed"),
        ("GEMINI", "queued"),
    ]


@pytest.mark.parametrize("fmt", ["pdf", "", "MD"])
async def test_export_in_another_format_is_a_400_json_error(client, user, room, fmt):
    response = await client.get(
        f"/api/v1/chatroom/{room['id']}/export?format={fmt}", headers=user.headers
    )
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "fail"
    assert body["errors"][0]["field"] == "format"


@pytest.mark.parametrize("settings_overrides", [{"export_max_messages": 3}])
async def test_export_keeps_the_latest_messages_and_says_it_is_cut(
    api, bus, client, user, room, settings_overrides
):
    await exchange(api, bus, user, room["id"], "second", "second answer")
    base = f"/api/v1/chatroom/{room['id']}/export"
    body = (await client.get(f"{base}?format=json", headers=user.headers)).json()
    assert body["truncated"] is True
    assert [m["content"] for m in body["messages"]] == [
        "Yoga is a practice.",
        "second",
        "second answer",
    ]
    text = (await client.get(base, headers=user.headers)).text
    assert "3 messages, the latest only." in text
