"""DELETE /user/me: a fresh code, then the user is gone from auth (row, codes, tier
projection, outbox, stream), UserDeleted is published with the id only, and every token
of the account is refused at once."""

import json
import uuid

import psycopg

from shared.testing.fixtures import random_mobile_number
from shared.testing.wait import eventually


async def signed_up(client) -> tuple[str, str, dict[str, str]]:
    number = random_mobile_number()
    user_id = (await client.post("/api/v1/auth/signup", json={"mobileNumber": number})).json()[
        "userId"
    ]
    token = (await login(client, number)).json()["token"]
    return number, user_id, {"Authorization": f"Bearer {token}"}


async def code(client, number: str) -> str:
    return (await client.post("/api/v1/auth/send-otp", json={"mobileNumber": number})).json()["otp"]


async def login(client, number: str):
    otp = await code(client, number)
    return await client.post("/api/v1/auth/verify-otp", json={"mobileNumber": number, "otp": otp})


async def delete(client, headers, otp: object):
    return await client.request("DELETE", "/api/v1/user/me", json={"otp": otp}, headers=headers)


async def stream_texts(redis, stream: str) -> str:
    return json.dumps([fields for _, fields in await redis.xrange(stream)])


async def test_a_token_alone_cannot_delete_the_account(client):
    number, _, headers = await signed_up(client)
    assert (await client.request("DELETE", "/api/v1/user/me", headers=headers)).status_code == 400
    assert (await delete(client, headers, "12345")).status_code == 400
    right = await code(client, number)
    wrong = await delete(client, headers, "000000" if right != "000000" else "111111")
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_otp"
    me = await client.get("/api/v1/user/me", headers=headers)
    assert me.status_code == 200
    assert (
        await client.request("DELETE", "/api/v1/user/me", json={"otp": "123456"})
    ).status_code == 401


async def test_deletion_erases_the_user_and_refuses_every_token_at_once(
    client, redis, auth_database_url
):
    number, user_id, headers = await signed_up(client)
    second = {"Authorization": f"Bearer {(await login(client, number)).json()['token']}"}

    response = await delete(client, headers, await code(client, number))
    assert response.status_code == 200, response.text
    assert response.json()["message"] == "Your account and its chats have been deleted."

    for token in (headers, second):
        refused = await client.get("/api/v1/user/me", headers=token)
        assert refused.status_code == 401
    again = await delete(client, second, "123456")
    assert again.status_code == 401

    with psycopg.connect(auth_database_url) as conn:
        for table in ("users", "otp_challenges", "tier_projection"):
            column = "id" if table == "users" else "user_id"
            count = conn.execute(
                f"SELECT count(*) FROM auth.{table} WHERE {column} = %s", (user_id,)
            ).fetchone()
            assert count == (0,), table
        rows = conn.execute(
            "SELECT type, envelope::text FROM auth.outbox WHERE envelope::text LIKE %s",
            (f"%{user_id}%",),
        ).fetchall()
        assert [t for t, _ in rows] == ["UserDeleted"]
        assert number not in rows[0][1]

    # Auth's own handler of UserDeleted takes UserRegistered (with the number) out of the
    # stream; the deletion stays, with the id only.
    async def erased() -> bool:
        text = await stream_texts(redis, "auth.events")
        return number not in text and "UserDeleted" in text

    await eventually(erased, what="the number gone from auth.events")
    mine = [
        json.loads(fields["envelope"])
        for _, fields in await redis.xrange("auth.events")
        if user_id in fields["envelope"]
    ]
    assert [e["type"] for e in mine] == ["UserDeleted"]
    assert set(mine[0]["payload"]) == {"userId", "deletedAt"}

    # Nothing in Redis holds the number in clear (the rate limits count a keyed hash), nor
    # the id but in the UserDeleted entry.
    async for key in redis.scan_iter(count=1000):
        assert number.lstrip("+") not in key and user_id not in key, key
        if await redis.type(key) == "stream":
            entries = json.dumps(await redis.xrange(key))
            assert number.lstrip("+") not in entries, key


async def test_a_new_account_with_the_same_number_is_a_new_user(client):
    number, user_id, headers = await signed_up(client)
    assert (await delete(client, headers, await code(client, number))).status_code == 200
    again = await client.post("/api/v1/auth/signup", json={"mobileNumber": number})
    assert again.status_code == 201, again.text
    assert again.json()["userId"] != user_id
    assert uuid.UUID(again.json()["userId"])
