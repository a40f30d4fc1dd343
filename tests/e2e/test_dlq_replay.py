"""A dead letter replayed once its cause is fixed, through the running stack: chat's
database refuses a reply, chat's consumer gives up on the event that completes it, and the
operator, after the fix, finds it and puts it back with ``python -m chat dlq``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg
import pytest
from psycopg import sql

from dev.stack import Stack
from shared import dlq
from shared.testing.accounts import sign_up_and_in
from shared.testing.wait import eventually

pytestmark = pytest.mark.e2e

# The stack's CLAIM_IDLE_SECONDS=5 and MAX_DELIVERIES=3: three failed deliveries ~6 s
# apart, then the dead letter (~19 s). Chat's reconciler would queue the reply again only
# after RECONCILE_AFTER_SECONDS=60.
DEAD_LETTER_TIMEOUT = 40


@contextmanager
def completion_refused(database_url: str, chatroom_id: str) -> Iterator[None]:
    """Chat's database refuses to mark a reply of ``chatroom_id`` completed, as a bad
    migration, a full disk or a broken constraint would; only this room's, so the tests
    sharing the stack are not hurt. Dropped (the operator's fix) on leaving."""
    name = sql.Identifier(f"e2e_refuse_{uuid.uuid4().hex[:12]}")
    room = sql.Literal(chatroom_id)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE FUNCTION chat.{}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " RAISE EXCEPTION 'replies of chatroom % cannot be completed', NEW.chatroom_id;"
                " END $$"
            ).format(name)
        )
        try:
            conn.execute(
                sql.SQL(
                    "CREATE TRIGGER {} BEFORE UPDATE ON chat.messages FOR EACH ROW"
                    " WHEN (NEW.chatroom_id = {}::uuid AND NEW.status = 'completed')"
                    " EXECUTE FUNCTION chat.{}()"
                ).format(name, room, name)
            )
            yield
        finally:
            conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON chat.messages").format(name))
            conn.execute(sql.SQL("DROP FUNCTION IF EXISTS chat.{}()").format(name))


async def chat_command(stack: Stack, *argv: str) -> subprocess.CompletedProcess[str]:
    """``python -m chat ...`` as the operator runs it, with the stack's settings."""
    done = await asyncio.to_thread(stack.command, "chat", *argv)
    assert done.returncode == 0, f"chat {' '.join(argv)}: {done.stderr}"
    return done


async def test_a_reply_refused_by_the_database_completes_when_replayed_after_the_fix(
    api: httpx.AsyncClient, stack: Stack, stack_redis, database_url: str
) -> None:
    headers = (await sign_up_and_in(api)).headers
    created = await api.post("/api/v1/chatroom", json={"name": "dlq"}, headers=headers)
    assert created.status_code == 201, created.text
    room = created.json()["data"]["chatroom"]["id"]

    async def reply(reply_id: str) -> dict:
        response = await api.get(f"/api/v1/chatroom/{room}", headers=headers)
        assert response.status_code == 200, response.text
        messages = response.json()["data"]["chatroom"]["messages"]
        return next(m for m in messages if m["id"] == reply_id)

    async def dead_lettered(reply_id: str) -> bool:
        """The test's own look (the operator's comes after): the reply's event in the DLQ."""
        for _, fields in await stack_redis.xrange("ai.events.dlq"):
            if reply_id in fields.get("envelope", "") and fields.get("type") == "ReplyCompleted":
                return True
        return False

    with completion_refused(database_url, room):
        sent = await api.post(
            f"/api/v1/chatroom/{room}/message", json={"content": "What is yoga?"}, headers=headers
        )
        assert sent.status_code == 201, sent.text
        reply_id = sent.json()["data"]["reply"]["id"]

        await eventually(
            lambda: dead_lettered(reply_id),
            timeout=DEAD_LETTER_TIMEOUT,
            interval=0.2,
            what="the reply's event in ai.events.dlq",
        )
        stuck = await reply(reply_id)
        assert (stuck["status"], stuck["content"]) == ("queued", "")
    # The cause is fixed (chat's log has the exception, under the event's id). The operator
    # finds the dead letter, and replays it.
    listed = await chat_command(stack, "dlq", "list", "--stream", "ai.events")
    for line in reversed(listed.stdout.splitlines()):  # newest first
        if "type=ReplyCompleted" in line and "replayed=no" in line:
            shown = await chat_command(stack, "dlq", "show", line.split()[0])
            letter = json.loads(shown.stdout)
            if letter["fields"]["envelope"]["payload"]["replyId"] == reply_id:
                break
    else:
        raise AssertionError(f"reply {reply_id} not in `dlq list`:\n{listed.stdout}")
    # The reason is the handler's error: what the operator has to fix.
    assert letter["group"] == "chat"
    assert letter["reason"].startswith("handler failed: ")
    assert f"replies of chatroom {room} cannot be completed" in letter["reason"]
    envelope = letter["fields"]["envelope"]

    replayed = await chat_command(stack, "dlq", "replay", letter["id"])
    first = f"replayed {letter['id']} to ai.events as "
    assert replayed.stdout.startswith(first), replayed.stdout
    replay_id = replayed.stdout.removeprefix(first).split()[0]

    async def completed() -> bool:
        return (await reply(reply_id))["status"] == "completed"

    await eventually(completed, timeout=15, interval=0.2, what="the replayed reply completed")
    stored = await reply(reply_id)
    assert stored["content"] == envelope["payload"]["text"]
    assert "What is yoga?" in stored["content"]  # the simulator's answer, whole
    with psycopg.connect(database_url) as conn:
        [(attempts,)] = conn.execute(
            "SELECT attempts FROM chat.messages WHERE id = %s", (reply_id,)
        ).fetchall()
    assert attempts == 1  # completed by the replay, not by the reconciler asking again

    # Asking again does nothing; the dead letter stays, listed as replayed, until purged.
    again, listed = await asyncio.gather(
        chat_command(stack, "dlq", "replay", letter["id"]), chat_command(stack, "dlq", "list")
    )
    assert again.stdout.strip() == (
        f"{letter['id']} was already replayed as {replay_id}: nothing done"
    )
    [line] = [line for line in listed.stdout.splitlines() if line.startswith(letter["id"])]
    assert f"replayed={replay_id}" in line
    copies = [
        fields
        for _, fields in await stack_redis.xrange("ai.events", min=letter["original_id"])
        if envelope["id"] in fields.get("envelope", "")
    ]
    assert [c.get("replay_group") for c in copies] == [None, "chat"]  # the original, one replay

    # Done with: purged (as `dlq purge` does), so the stack's other tests do not find it.
    done_with = await dlq.find(stack_redis, ["ai.events"], letter["id"])
    assert done_with is not None and await dlq.purge(stack_redis, done_with)
