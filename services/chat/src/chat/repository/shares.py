"""Share links' SQL, and the messages a snapshot or an export is made of."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from chat.repository.branches import LEAF, path_cte
from chat.repository.rows import MESSAGE_COLUMNS, Message


@dataclass(frozen=True)
class Share:
    id: uuid.UUID
    chatroom_id: uuid.UUID
    snapshot: dict[str, Any]
    created_at: datetime


_SHARE_COLUMNS = "id, chatroom_id, snapshot, created_at"


async def revoke_shares(conn: AsyncConnection, room_id: uuid.UUID, user_id: uuid.UUID) -> int:
    """Revoke the room's live link (if any); the number revoked."""
    cur = await conn.execute(
        "UPDATE shares SET revoked_at = clock_timestamp()"
        " WHERE chatroom_id = %s AND user_id = %s AND revoked_at IS NULL",
        (room_id, user_id),
    )
    return cur.rowcount


async def insert_share(
    conn: AsyncConnection,
    *,
    share_id: uuid.UUID,
    token_hash: bytes,
    room_id: uuid.UUID,
    user_id: uuid.UUID,
    snapshot: dict[str, Any],
) -> Share:
    async with conn.cursor(row_factory=class_row(Share)) as cur:
        await cur.execute(
            "INSERT INTO shares (id, token_hash, chatroom_id, user_id, snapshot)"
            f" VALUES (%s, %s, %s, %s, %s) RETURNING {_SHARE_COLUMNS}",
            (share_id, token_hash, room_id, user_id, Jsonb(snapshot)),
        )
        share = await cur.fetchone()
    assert share is not None
    return share


async def live_share(conn: AsyncConnection, token_hash: bytes) -> Share | None:
    """The link whose token hashes to ``token_hash``, unless it was revoked."""
    async with conn.cursor(row_factory=class_row(Share)) as cur:
        await cur.execute(
            f"SELECT {_SHARE_COLUMNS} FROM shares WHERE token_hash = %s AND revoked_at IS NULL",
            (token_hash,),
        )
        return await cur.fetchone()


async def shared_messages(conn: AsyncConnection, room_id: uuid.UUID, limit: int) -> list[Message]:
    """What a snapshot shows: of the room's current path, the latest ``limit`` prompts and
    completed replies up to the last completed reply, oldest first."""
    async with conn.cursor(row_factory=class_row(Message)) as cur:
        await cur.execute(
            path_cte(LEAF)
            + f"""
            SELECT {MESSAGE_COLUMNS} FROM (
                SELECT * FROM path
                 WHERE (role = 'USER' OR status = 'completed')
                   AND seq <= (SELECT max(seq) FROM path
                                WHERE role = 'GEMINI' AND status = 'completed')
                 ORDER BY seq DESC LIMIT %(limit)s
            ) latest ORDER BY seq
            """,
            {"room": room_id, "limit": limit},
        )
        return await cur.fetchall()


async def exported_messages(conn: AsyncConnection, room_id: uuid.UUID, limit: int) -> list[Message]:
    """What an export holds: the latest ``limit`` messages of the room's current path, in
    any state, oldest first."""
    async with conn.cursor(row_factory=class_row(Message)) as cur:
        await cur.execute(
            path_cte(LEAF)
            + f"""
            SELECT {MESSAGE_COLUMNS} FROM (
                SELECT * FROM path ORDER BY seq DESC LIMIT %(limit)s
            ) latest ORDER BY seq
            """,
            {"room": room_id, "limit": limit},
        )
        return await cur.fetchall()
