"""Messages' SQL: prompts and replies, their outcomes, and the pending ones."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from psycopg import AsyncConnection
from psycopg.rows import class_row

from chat.repository.rows import MESSAGE_COLUMNS, Message, pending_sql, still_pending_sql


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
    model: str | None = None,
    parent_id: uuid.UUID | None = None,
) -> Message:
    async with conn.cursor(row_factory=class_row(Message)) as cur:
        await cur.execute(
            _INSERT_MESSAGE,
            (
                *(message_id, chatroom_id, user_id, role, content, status),
                *(reply_to, quota_day, model, parent_id, status),
            ),
        )
        message = await cur.fetchone()
    assert message is not None
    return message


_INSERT_MESSAGE = f"""
    INSERT INTO messages
        (id, chatroom_id, user_id, role, content, status, reply_to, quota_day, model,
         parent_id, completed_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
            CASE WHEN %s = 'completed' THEN clock_timestamp() END)
    RETURNING {MESSAGE_COLUMNS}
"""


async def get_message(
    conn: AsyncConnection, message_id: uuid.UUID, chatroom_id: uuid.UUID, user_id: uuid.UUID
) -> Message | None:
    async with conn.cursor(row_factory=class_row(Message)) as cur:
        await cur.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages"
            " WHERE id = %s AND chatroom_id = %s AND user_id = %s",
            (message_id, chatroom_id, user_id),
        )
        return await cur.fetchone()


async def get_message_by_id(conn: AsyncConnection, message_id: uuid.UUID) -> Message | None:
    async with conn.cursor(row_factory=class_row(Message)) as cur:
        await cur.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = %s", (message_id,))
        return await cur.fetchone()


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
        f"""
        UPDATE messages
           SET content = %s, status = 'completed', finish_reason = %s, prompt_tokens = %s,
               output_tokens = %s, error = NULL, error_code = NULL,
               completed_at = clock_timestamp()
         WHERE id = %s AND role = 'GEMINI' AND {still_pending_sql()}
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
             WHERE id = %s AND role = 'GEMINI' AND {still_pending_sql()}
            RETURNING {MESSAGE_COLUMNS}
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
            SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE {pending_sql()} AND queued_at < %s
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
             WHERE id = %s AND role = 'GEMINI' AND {still_pending_sql()}
            RETURNING {MESSAGE_COLUMNS}
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
