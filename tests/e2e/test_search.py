"""Search across chats through the whole stack: a prompt answered by the ai-worker (the
Gemini simulator quotes the prompt in its reply) is found through the gateway, by its
owner only."""

from __future__ import annotations

import httpx
import pytest

from shared.testing.accounts import sign_up_and_in
from shared.testing.wait import eventually

pytestmark = pytest.mark.e2e


async def test_a_streamed_reply_and_its_prompt_are_found_by_their_owner_only(
    api: httpx.AsyncClient,
) -> None:
    owner = (await sign_up_and_in(api)).headers
    stranger = (await sign_up_and_in(api)).headers
    created = await api.post("/api/v1/chatroom", json={"name": "Kayak trips"}, headers=owner)
    assert created.status_code == 201, created.text
    room_id = created.json()["data"]["chatroom"]["id"]
    sent = await api.post(
        f"/api/v1/chatroom/{room_id}/message",
        json={"content": "Plan a kayak trip along the fjords"},
        headers=owner,
    )
    assert sent.status_code == 201, sent.text
    prompt_id = sent.json()["data"]["message"]["id"]
    reply_id = sent.json()["data"]["reply"]["id"]

    async def search(headers: dict[str, str], q: str, **params: object) -> httpx.Response:
        return await api.get("/api/v1/search", params={"q": q, **params}, headers=headers)

    async def reply_found() -> bool:
        hits = (await search(owner, "fjords")).json()["data"]["hits"]
        return any(h["messageId"] == reply_id for h in hits)

    await eventually(reply_found, timeout=30, interval=0.2, what="the reply to be searchable")
    response = await search(owner, "fjord")
    assert response.status_code == 200
    assert response.headers["x-request-id"]
    body = response.json()
    assert body["status"] == "success"
    hits = {(h["kind"], h["messageId"]) for h in body["data"]["hits"]}
    assert hits == {("prompt", prompt_id), ("reply", reply_id)}
    for hit in body["data"]["hits"]:
        assert hit["chatroomId"] == room_id and hit["chatroomName"] == "Kayak trips"
        assert [p["text"] for p in hit["snippet"] if p["match"]] == ["fjords"]

    titles = (await search(owner, "kayaks", limit=1)).json()["data"]
    assert titles["hits"][0]["kind"] == "title" and titles["nextCursor"]
    rest = (await search(owner, "kayaks", cursor=titles["nextCursor"])).json()["data"]
    assert titles["hits"][0] not in rest["hits"]

    assert (await search(stranger, "fjords kayak")).json()["data"]["hits"] == []
    for bad in ({"q": " "}, {"q": "ok", "cursor": "nope"}):
        refused = await api.get("/api/v1/search", params=bad, headers=owner)
        assert refused.status_code == 400 and refused.json()["code"] == "validation_error"
    assert (await api.get("/api/v1/search", params={"q": "fjords"})).status_code == 401
