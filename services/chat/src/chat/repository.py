"""All of chat's SQL. Functions take the connection first; none of them commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from psycopg import AsyncConnection
from psycopg.rows import class_row

from shared import outbox
from shared.tiers import SubscriptionState

PENDING = ("queued", "generating")
# What the messages table's CHECK constraints allow.
Role = Literal["USER", "GEMINI"]
MessageStatus = Literal["queued", "generating", "completed", "failed", "blocked", "cancelled"]


@dataclass(frozen=True)
class Chatroom:
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    auto_title: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Message:
    id: uuid.UUID
    seq: int
    chatroom_id: uuid.UUID
    user_id: uuid.UUID
    role: Role
    content: str
    status: MessageStatus
    reply_to: uuid.UUID | None
    error_code: str | None
    error: str | None
    quota_day: date | None
    attempts: int
    superseded_by: uuid.UUID | None
    created_at: datetime
    completed_at: datetime | None


_ROOM = "id, user_id, name, auto_title, created_at, updated_at"
_MSG = (
    "id, seq, chatroom_id, user_id, role, content, status, reply_to, error_code, error,"
    " quota_day, attempts, superseded_by, created_at, completed_at"
)


# -- chatrooms ---------------------------------------------------------------------------


async def insert_chatroom(
    conn: AsyncConnection, room_id: uuid.UUID, user_id: uuid.UUID, name: str, auto_title: bool
) -> Chatroom:
    async with conn.cursor(row_factory=class_row(Chatroom)) as cur:
        await cur.execute(
            f"INSERT INTO chatrooms (id, user_id, name, auto_title) VALUES (%s, %s, %s, %s)"
            f" RETURNING {_ROOM}",
            (room_id, user_id, name, auto_title),
        )
        room = await cur.fetchone()
    assert room is not None
    return room


async def lock_user_chatrooms(conn: AsyncConnection, user_id: uuid.UUID) -> None:
    """Hold a per-user lock until the transaction ends: creates of one user's rooms run
    one at a time (the room limit is checked by counting)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"chat.chatrooms:{user_id}",)
    )


async def count_chatrooms(conn: AsyncConnection, user_id: uuid.UUID) -> int:
    cur = await conn.execute("SELECT count(*) FROM chatrooms WHERE user_id = %s", (user_id,))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def get_chatroom(
    conn: AsyncConnection, room_id: uuid.UUID, user_id: uuid.UUID, *, lock: bool = False
) -> Chatroom | None:
    """The room, only if it belongs to ``user_id``."""
    suffix = " FOR UPDATE" if lock else ""
    async with conn.cursor(row_factory=class_row(Chatroom)) as cur:
        await cur.execute(
            f"SELECT {_ROOM} FROM chatrooms WHERE id = %s AND user_id = %s{suffix}",
            (room_id, user_id),
        )
        return await cur.fetchone()


async def list_chatrooms(
    conn: AsyncConnection,
    user_id: uuid.UUID,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[Chatroom]:
    """Newest first; ``after`` is the (created_at, id) of the last room of the previous page."""
    async with conn.cursor(row_factory=class_row(Chatroom)) as cur:
        if after is None:
            await cur.execute(
                f"SELECT {_ROOM} FROM chatrooms WHERE user_id = %s"
                " ORDER BY created_at DESC, id DESC LIMIT %s",
                (user_id, limit),
            )
        else:
            await cur.execute(
                f"SELECT {_ROOM} FROM chatrooms WHERE user_id = %s AND (created_at, id) < (%s, %s)"
                " ORDER BY created_at DESC, id DESC LIMIT %s",
                (user_id, after[0], after[1], limit),
            )
        return await cur.fetchall()


async def rename_chatroom(
    conn: AsyncConnection, room_id: uuid.UUID, user_id: uuid.UUID, name: str
) -> Chatroom | None:
    async with conn.cursor(row_factory=class_row(Chatroom)) as cur:
        await cur.execute(
            f"UPDATE chatrooms SET name = %s, auto_title = false, updated_at = clock_timestamp()"
            f" WHERE id = %s AND user_id = %s RETURNING {_ROOM}",
            (name, room_id, user_id),
        )
        return await cur.fetchone()


async def delete_chatroom(conn: AsyncConnection, room_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    cur = await conn.execute(
        "DELETE FROM chatrooms WHERE id = %s AND user_id = %s", (room_id, user_id)
    )
    return cur.rowcount == 1


# -- messages ----------------------------------------------------------------------------


async def insert_message(
    conn: AsyncConnection,
    *,
    message_id: uuid.UUID,
    chatroom_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str,
    content: str,
    status: str,
    reply_to: uuid.UUID | None = None,
    quota_day: date | None = None,
) -> Message:
    async with conn.cursor(row_factory=class_row(Message)) as cur:
        await cur.execute(
            _INSERT_MESSAGE,
            (message_id, chatroom_id, user_id, role, content, status, reply_to, quota_day, status),
        )
        message = await cur.fetchone()
    assert message is not None
    return message


_INSERT_MESSAGE = f"""
    INSERT INTO messages
        (id, chatroom_id, user_id, role, content, status, reply_to, quota_day, completed_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s,
            CASE WHEN %s = 'completed' THEN clock_timestamp() END)
    RETURNING {_MSG}
"""


async def get_message(
    conn: AsyncConnection, message_id: uuid.UUID, chatroom_id: uuid.UUID, user_id: uuid.UUID
) -> Message | None:
    async with conn.cursor(row_factory=class_row(Message)) as cur:
        await cur.execute(
            f"SELECT {_MSG} FROM messages WHERE id = %s AND chatroom_id = %s AND user_id = %s",
            (message_id, chatroom_id, user_id),
        )
        return await cur.fetchone()


async def get_message_by_id(conn: AsyncConnection, message_id: uuid.UUID) -> Message | None:
    async with conn.cursor(row_factory=class_row(Message)) as cur:
        await cur.execute(f"SELECT {_MSG} FROM messages WHERE id = %s", (message_id,))
        return await cur.fetchone()


async def list_messages(
    conn: AsyncConnection, chatroom_id: uuid.UUID, limit: int, before_seq: int | None
) -> list[Message]:
    """The ``limit`` latest messages (before ``before_seq``), oldest first."""
    async with conn.cursor(row_factory=class_row(Message)) as cur:
        await cur.execute(
            f"""
            SELECT * FROM (
                SELECT {_MSG} FROM messages
                 WHERE chatroom_id = %s AND (%s::bigint IS NULL OR seq < %s)
                 ORDER BY seq DESC LIMIT %s
            ) latest ORDER BY seq
            """,
            (chatroom_id, before_seq, before_seq, limit),
        )
        return await cur.fetchall()


async def conversation_before(
    conn: AsyncConnection, chatroom_id: uuid.UUID, before_seq: int, limit: int
) -> list[tuple[str, str]]:
    """(role, content) of the latest completed messages before ``before_seq``, newest first."""
    cur = await conn.execute(
        """
        SELECT role, content FROM messages
         WHERE chatroom_id = %s AND seq < %s AND status = 'completed' AND content <> ''
           AND superseded_by IS NULL
         ORDER BY seq DESC LIMIT %s
        """,
        (chatroom_id, before_seq, limit),
    )
    return [(row[0], row[1]) for row in await cur.fetchall()]


async def complete_reply(
    conn: AsyncConnection,
    reply_id: uuid.UUID,
    *,
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    output_tokens: int,
) -> bool:
    """Store the answer; False when the reply is already final (or gone)."""
    cur = await conn.execute(
        """
        UPDATE messages
           SET content = %s, status = 'completed', finish_reason = %s, prompt_tokens = %s,
               output_tokens = %s, error = NULL, error_code = NULL,
               completed_at = clock_timestamp()
         WHERE id = %s AND role = 'GEMINI' AND status IN ('queued', 'generating')
        """,
        (text, finish_reason, prompt_tokens, output_tokens, reply_id),
    )
    return cur.rowcount == 1


async def fail_reply(
    conn: AsyncConnection,
    reply_id: uuid.UUID,
    *,
    status: str,
    code: str,
    message: str,
    partial_text: str = "",
) -> Message | None:
    """Mark the reply failed/blocked; None when it is already final (or gone)."""
    async with conn.cursor(row_factory=class_row(Message)) as cur:
        await cur.execute(
            f"""
            UPDATE messages
               SET status = %s, error_code = %s, error = %s, content = %s,
                   completed_at = clock_timestamp()
             WHERE id = %s AND role = 'GEMINI' AND status IN ('queued', 'generating')
            RETURNING {_MSG}
            """,
            (status, code, message, partial_text, reply_id),
        )
        return await cur.fetchone()


async def stale_pending_replies(
    conn: AsyncConnection, queued_before: datetime, limit: int
) -> list[Message]:
    """Pending replies last queued before ``queued_before``, locked for this transaction."""
    async with conn.cursor(row_factory=class_row(Message)) as cur:
        await cur.execute(
            f"""
            SELECT {_MSG} FROM messages
             WHERE status IN ('queued', 'generating') AND queued_at < %s
             ORDER BY queued_at LIMIT %s
               FOR UPDATE SKIP LOCKED
            """,
            (queued_before, limit),
        )
        return await cur.fetchall()


async def set_auto_title(
    conn: AsyncConnection, room_id: uuid.UUID, user_id: uuid.UUID, title: str
) -> bool:
    """Rename a room that still awaits its automatic title; False if the user named it."""
    cur = await conn.execute(
        "UPDATE chatrooms SET name = %s, auto_title = false, updated_at = clock_timestamp()"
        " WHERE id = %s AND user_id = %s AND auto_title",
        (title, room_id, user_id),
    )
    return cur.rowcount == 1


async def count_prompts(conn: AsyncConnection, room_id: uuid.UUID) -> int:
    cur = await conn.execute(
        "SELECT count(*) FROM messages WHERE chatroom_id = %s AND role = 'USER'", (room_id,)
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def latest_reply_id(conn: AsyncConnection, room_id: uuid.UUID) -> uuid.UUID | None:
    cur = await conn.execute(
        "SELECT id FROM messages WHERE chatroom_id = %s AND role = 'GEMINI'"
        " ORDER BY seq DESC LIMIT 1",
        (room_id,),
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def supersede(conn: AsyncConnection, old_id: uuid.UUID, new_id: uuid.UUID) -> None:
    await conn.execute("UPDATE messages SET superseded_by = %s WHERE id = %s", (new_id, old_id))


async def cancel_reply(
    conn: AsyncConnection, reply_id: uuid.UUID, text_so_far: str
) -> Message | None:
    """Stop a pending reply, keeping what was produced; None when it was already final."""
    async with conn.cursor(row_factory=class_row(Message)) as cur:
        await cur.execute(
            f"""
            UPDATE messages
               SET status = 'cancelled', content = %s, completed_at = clock_timestamp()
             WHERE id = %s AND role = 'GEMINI' AND status IN ('queued', 'generating')
            RETURNING {_MSG}
            """,
            (text_so_far, reply_id),
        )
        return await cur.fetchone()


async def mark_requeued(conn: AsyncConnection, reply_id: uuid.UUID) -> int:
    cur = await conn.execute(
        "UPDATE messages SET attempts = attempts + 1, queued_at = clock_timestamp()"
        " WHERE id = %s RETURNING attempts",
        (reply_id,),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


# -- quota -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptContext:
    """What sending a prompt into a room needs to know first, read in one statement."""

    room: Chatroom
    prompts: int  # prompts already in the room
    pending: bool  # a reply in the room is queued or being generated
    used_today: int  # quota units the user took on the given day
    # (role, content) of the latest completed messages, newest first.
    history: list[tuple[str, str]]
    subscription: SubscriptionState | None


async def prompt_context(
    conn: AsyncConnection, room_id: uuid.UUID, user_id: uuid.UUID, day: date, history_turns: int
) -> PromptContext | None:
    """None when the room does not exist or is not ``user_id``'s."""
    cur = await conn.execute(
        f"""
        SELECT {", ".join("c." + c for c in _ROOM.split(", "))},
               (SELECT count(*) FROM messages m
                 WHERE m.chatroom_id = c.id AND m.role = 'USER') AS prompts,
               EXISTS (SELECT 1 FROM messages m
                        WHERE m.chatroom_id = c.id AND m.role = 'GEMINI'
                          AND m.status IN ('queued', 'generating')) AS pending,
               (SELECT u.used FROM daily_usage u
                 WHERE u.user_id = c.user_id AND u.day = %(day)s) AS used_today,
               (SELECT json_agg(json_build_array(h.role, h.content) ORDER BY h.seq DESC)
                  FROM (SELECT role, content, seq FROM messages
                         WHERE chatroom_id = c.id AND status = 'completed' AND content <> ''
                           AND superseded_by IS NULL
                         ORDER BY seq DESC LIMIT %(turns)s) h) AS history,
               s.status, s.current_period_end, s.cancel_at_period_end, s.grace_until, s.as_of
          FROM chatrooms c LEFT JOIN subscriptions s ON s.user_id = c.user_id
         WHERE c.id = %(room)s AND c.user_id = %(user)s
        """,
        {"room": room_id, "user": user_id, "day": day, "turns": history_turns},
    )
    row = await cur.fetchone()
    if row is None:
        return None
    room = Chatroom(*row[:6])
    prompts, pending, used_today, history = row[6:10]
    subscription = SubscriptionState(*row[10:]) if row[10] is not None else None
    return PromptContext(
        room,
        int(prompts),
        bool(pending),
        int(used_today or 0),
        [(role, content) for role, content in history or []],
        subscription,
    )


@dataclass(frozen=True)
class StoredPrompt:
    used: int | None  # today's quota units after this one; None: the limit was reached
    prompt: Message | None
    reply: Message | None


async def store_prompt(
    conn: AsyncConnection,
    *,
    user_id: uuid.UUID,
    room_id: uuid.UUID,
    day: date,
    limit: int | None,
    prompt_id: uuid.UUID,
    reply_id: uuid.UUID,
    content: str,
    event: tuple[object, ...],
) -> StoredPrompt:
    """Take a quota unit and insert the prompt, its queued reply and the outbox row
    ``event`` (:func:`shared.outbox.row`): one statement, so one round trip and atomic
    without a transaction around it. When the limit is reached nothing is inserted
    (``used`` None). Raises UniqueViolation when a reply in the room is pending, and
    ForeignKeyViolation when the room was deleted meanwhile."""
    event_id, stream, event_type, envelope = event
    cur = await conn.execute(
        _STORE_PROMPT,
        {
            "user_id": user_id,
            "room_id": room_id,
            "day": day,
            "limit": limit,
            "prompt_id": prompt_id,
            "reply_id": reply_id,
            "content": content,
            "event_id": event_id,
            "stream": stream,
            "type": event_type,
            "envelope": envelope,
        },
    )
    rows = await cur.fetchall()
    if not rows:
        return StoredPrompt(None, None, None)
    width = len(_MSG.split(","))
    prompt, reply = (Message(*r[1 : 1 + width]) for r in rows)
    return StoredPrompt(int(rows[0][0]), prompt, reply)


# Every part selects FROM quota: when the limit is reached (no row) nothing is inserted.
# The prompt is inserted before its reply (ORDER BY), so it gets the lower seq.
_STORE_PROMPT = f"""
    WITH quota AS (
        INSERT INTO daily_usage AS u (user_id, day, used)
        SELECT %(user_id)s, %(day)s, 1 WHERE %(limit)s::integer IS NULL OR %(limit)s > 0
        ON CONFLICT ON CONSTRAINT daily_usage_pkey
        DO UPDATE SET used = u.used + 1 WHERE %(limit)s::integer IS NULL OR u.used < %(limit)s
        RETURNING used
    ), stored AS (
        INSERT INTO messages
            (id, chatroom_id, user_id, role, content, status, reply_to, quota_day, completed_at)
        SELECT m.id, %(room_id)s, %(user_id)s, m.role, m.content, m.status, m.reply_to,
               m.quota_day, CASE WHEN m.status = 'completed' THEN clock_timestamp() END
          FROM quota,
               (VALUES (1, %(prompt_id)s::uuid, 'USER', %(content)s, 'completed',
                        NULL::uuid, NULL::date),
                       (2, %(reply_id)s::uuid, 'GEMINI', '', 'queued',
                        %(prompt_id)s::uuid, %(day)s::date))
                 AS m (n, id, role, content, status, reply_to, quota_day)
         ORDER BY m.n
        RETURNING {_MSG}
    ), queued AS (
        INSERT INTO outbox ({outbox.COLUMNS})
        SELECT %(event_id)s, %(stream)s, %(type)s, %(envelope)s::jsonb FROM quota
    )
    SELECT quota.used, stored.* FROM quota, stored ORDER BY stored.seq
"""


async def take_quota_unit(
    conn: AsyncConnection, user_id: uuid.UUID, day: date, limit: int | None
) -> int | None:
    """Count one prompt for ``day``; the new count, or None when ``limit`` is reached.

    Atomic: the conflict path locks the (user, day) row, so concurrent requests queue up
    behind each other and no interleaving can go past the limit. A limit of 0 refuses the
    day's first prompt too (no row is inserted).
    """
    cur = await conn.execute(_TAKE_QUOTA_UNIT, {"user_id": user_id, "day": day, "limit": limit})
    row = await cur.fetchone()
    return int(row[0]) if row else None


_TAKE_QUOTA_UNIT = """
    INSERT INTO daily_usage AS u (user_id, day, used)
    SELECT %(user_id)s, %(day)s, 1 WHERE %(limit)s::integer IS NULL OR %(limit)s > 0
    ON CONFLICT ON CONSTRAINT daily_usage_pkey
    DO UPDATE SET used = u.used + 1 WHERE %(limit)s::integer IS NULL OR u.used < %(limit)s
    RETURNING used
"""


async def give_back_quota_unit(conn: AsyncConnection, user_id: uuid.UUID, day: date) -> None:
    await conn.execute(
        "UPDATE daily_usage SET used = used - 1 WHERE user_id = %s AND day = %s AND used > 0",
        (user_id, day),
    )


async def quota_used(conn: AsyncConnection, user_id: uuid.UUID, day: date) -> int:
    cur = await conn.execute(
        "SELECT used FROM daily_usage WHERE user_id = %s AND day = %s", (user_id, day)
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0
