"""Chatrooms' SQL."""

from __future__ import annotations

import uuid
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import class_row

from chat.repository.rows import ROOM_COLUMNS, Chatroom, pending_sql


async def insert_chatroom(
    conn: AsyncConnection, room_id: uuid.UUID, user_id: uuid.UUID, name: str, auto_title: bool
) -> Chatroom:
    async with conn.cursor(row_factory=class_row(Chatroom)) as cur:
        await cur.execute(
            f"INSERT INTO chatrooms (id, user_id, name, auto_title) VALUES (%s, %s, %s, %s)"
            f" RETURNING {ROOM_COLUMNS}",
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
            f"SELECT {ROOM_COLUMNS} FROM chatrooms WHERE id = %s AND user_id = %s{suffix}",
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
                f"SELECT {ROOM_COLUMNS} FROM chatrooms WHERE user_id = %s"
                " ORDER BY created_at DESC, id DESC LIMIT %s",
                (user_id, limit),
            )
        else:
            await cur.execute(
                f"SELECT {ROOM_COLUMNS} FROM chatrooms"
                " WHERE user_id = %s AND (created_at, id) < (%s, %s)"
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
            f" WHERE id = %s AND user_id = %s RETURNING {ROOM_COLUMNS}",
            (name, room_id, user_id),
        )
        return await cur.fetchone()


async def delete_chatroom(conn: AsyncConnection, room_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    cur = await conn.execute(
        "DELETE FROM chatrooms WHERE id = %s AND user_id = %s", (room_id, user_id)
    )
    return cur.rowcount == 1


async def set_chatroom_model(
    conn: AsyncConnection, room_id: uuid.UUID, user_id: uuid.UUID, model: str | None
) -> Chatroom | None:
    """The room with its model choice set (None: its tier's); None when not the user's."""
    async with conn.cursor(row_factory=class_row(Chatroom)) as cur:
        await cur.execute(
            "UPDATE chatrooms SET model = %s, updated_at = clock_timestamp()"
            f" WHERE id = %s AND user_id = %s RETURNING {ROOM_COLUMNS}",
            (model, room_id, user_id),
        )
        return await cur.fetchone()


async def replies_of_user(
    conn: AsyncConnection, user_id: uuid.UUID
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """The ids of all the user's replies, and of those still pending."""
    cur = await conn.execute(
        f"SELECT id, {pending_sql()} FROM messages WHERE user_id = %s AND role = 'GEMINI'",
        (user_id,),
    )
    rows = await cur.fetchall()
    return [r[0] for r in rows], [r[0] for r in rows if r[1]]


async def delete_user_rows(conn: AsyncConnection, user_id: uuid.UUID) -> int:
    """All the user's rooms (their messages and share links go with them: ON DELETE
    CASCADE) and daily usage; how many rooms."""
    await conn.execute("DELETE FROM daily_usage WHERE user_id = %s", (user_id,))
    cur = await conn.execute("DELETE FROM chatrooms WHERE user_id = %s", (user_id,))
    return cur.rowcount
