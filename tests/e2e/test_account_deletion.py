"""Account deletion through the whole stack: DELETE /user/me, UserDeleted through auth's
outbox, and every consumer (auth, chat, billing, the ai-worker) erasing its part. Then
nothing of the user is in any schema or any Redis key, but the UserDeleted event (the id
only) — also when a consumer was down while it happened."""

from __future__ import annotations

import json
import signal
import uuid

import httpx
import psycopg
import pytest

from shared.testing.accounts import Account, sign_up_and_in
from shared.testing.wait import eventually, handled

pytestmark = pytest.mark.e2e

CONSUMERS = ("auth", "chat", "billing", "ai-worker")
SCHEMAS = ("auth", "chat", "billing")


async def final_reply(api: httpx.AsyncClient, account: Account, room: str) -> dict:
    async def done() -> dict | None:
        detail = await api.get(f"/api/v1/chatroom/{room}", headers=account.headers)
        replies = [
            m for m in detail.json()["data"]["chatroom"]["messages"] if m["role"] == "GEMINI"
        ]
        return replies[-1] if replies and replies[-1]["status"] != "queued" else None

    await eventually(done, timeout=30, what="the reply to be final")
    reply = await done()
    assert reply is not None
    return reply


async def a_whole_account(api, stripe_sim, account: Account) -> list[str]:
    """Chats with completed replies, a share link, Pro through Checkout: what the user
    leaves in every service. The texts that must not survive the deletion."""
    secret = f"secret {uuid.uuid4().hex[:12]}"
    created = await api.post("/api/v1/chatroom", json={"name": secret}, headers=account.headers)
    room = created.json()["data"]["chatroom"]["id"]
    sent = await api.post(
        f"/api/v1/chatroom/{room}/message", json={"content": secret}, headers=account.headers
    )
    assert sent.status_code == 201, sent.text
    assert (await final_reply(api, account, room))["status"] == "completed"
    shared = await api.post(f"/api/v1/chatroom/{room}/share", headers=account.headers)
    assert shared.status_code == 201, shared.text

    checkout = (await api.post("/api/v1/subscribe/pro", headers=account.headers)).json()["data"]
    paid = await stripe_sim.post(checkout["checkoutUrl"] + "/pay", follow_redirects=False)
    assert paid.status_code == 303, paid.text

    async def pro() -> bool:
        usage = await api.get("/api/v1/usage", headers=account.headers)
        return usage.json()["data"]["tier"] == "PRO"

    await eventually(pro, timeout=30, what="Pro everywhere")
    return [account.user_id, account.number.lstrip("+"), secret]


async def delete(api: httpx.AsyncClient, account: Account) -> None:
    sent = await api.post("/api/v1/auth/send-otp", json={"mobileNumber": account.number})
    assert sent.status_code == 200, sent.text
    deleted = await api.request(
        "DELETE", "/api/v1/user/me", json={"otp": sent.json()["otp"]}, headers=account.headers
    )
    assert deleted.status_code == 200, deleted.text
    # Refused at once, in every service behind the gateway.
    for path in ("/api/v1/chatroom", "/api/v1/subscription/status", "/api/v1/user/me"):
        refused = await api.get(path, headers=account.headers)
        assert refused.status_code == 401, (path, refused.text)


def rows_naming(database_url: str, texts: list[str]) -> list[str]:
    found = []
    with psycopg.connect(database_url) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema = ANY(%s) AND table_type = 'BASE TABLE'",
            (list(SCHEMAS),),
        ).fetchall()
        for schema, table in tables:
            # The deletion's own event stays in auth's outbox (the id only).
            kept = " AND t.type <> 'UserDeleted'" if table == "outbox" else ""
            for text in texts:
                (count,) = conn.execute(
                    f'SELECT count(*) FROM "{schema}"."{table}" t'
                    f" WHERE row_to_json(t)::text LIKE %s{kept}",
                    (f"%{text}%",),
                ).fetchone()
                if count:
                    found.append(f"{schema}.{table}: {text} ({count})")
    return found


async def redis_naming(redis, texts: list[str]) -> list[str]:
    """Keys naming one of ``texts``, and stream entries holding one (but UserDeleted)."""
    found = []
    async for key in redis.scan_iter(count=1000):
        found += [f"key {key}" for t in texts if t in key]
        kind = await redis.type(key)
        if kind == "stream":
            for entry_id, fields in await redis.xrange(key):
                if fields.get("type") == "UserDeleted":
                    continue
                text = json.dumps(fields)
                found += [f"{key} {entry_id}: {t}" for t in texts if t in text]
        elif kind == "string":
            value = await redis.get(key)
            found += [f"{key} = {t}" for t in texts if t in (value or "")]
    return found


async def erased_everywhere(stack_redis, database_url: str, texts: list[str]) -> None:
    for group in CONSUMERS:
        await handled(stack_redis, "auth.events", group, timeout=60)
    assert await redis_naming(stack_redis, texts) == []
    assert rows_naming(database_url, texts) == []


async def test_nothing_of_a_deleted_account_is_left_anywhere(
    api, stripe_sim, stack_redis, database_url
):
    account = await sign_up_and_in(api)
    texts = await a_whole_account(api, stripe_sim, account)
    assert rows_naming(database_url, texts)  # the scan sees them before
    await delete(api, account)
    await erased_everywhere(stack_redis, database_url, texts)


async def test_a_consumer_down_during_the_deletion_erases_when_it_is_back(
    api, stripe_sim, stack, stack_redis, database_url
):
    account = await sign_up_and_in(api)
    texts = await a_whole_account(api, stripe_sim, account)
    chat = stack.processes["chat"]
    chat.send_signal(signal.SIGTERM)
    chat.wait(15)
    try:
        sent = await api.post("/api/v1/auth/send-otp", json={"mobileNumber": account.number})
        deleted = await api.request(
            "DELETE", "/api/v1/user/me", json={"otp": sent.json()["otp"]}, headers=account.headers
        )
        assert deleted.status_code == 200, deleted.text
        for group in ("auth", "billing", "ai-worker"):
            await handled(stack_redis, "auth.events", group, timeout=60)
        assert any(t.startswith("chat.") for t in rows_naming(database_url, texts))
    finally:
        stack.restart("chat")
    await erased_everywhere(stack_redis, database_url, texts)
