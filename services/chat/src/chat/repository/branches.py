"""A chat's tree: the current path (the room's leaf and its ancestors), the siblings along
it, and moving the leaf. Paths are walked with recursive CTEs over ``parent_id``."""

from __future__ import annotations

import uuid

from psycopg import AsyncConnection
from psycopg.rows import class_row

from chat.repository.rows import MESSAGE_COLUMNS, Message

_WALKED = ", ".join(f"m.{c.strip()}" for c in MESSAGE_COLUMNS.split(","))


def path_cte(start: str, *, max_depth: str | None = None) -> str:
    """SQL: ``WITH RECURSIVE path`` holding the message ``start`` (an SQL expression for its
    id) and its ancestors, each with its ``depth`` (0: ``start``), up to ``max_depth``.

    Each step looks the parent up by its primary key in a LATERAL subquery (LIMIT 1 keeps
    it from being flattened into a join). As a plain join, a plan made while the table was
    small, and cached by a prepared statement, hashes the whole table at every step."""
    bound = f" WHERE path.depth < {max_depth}" if max_depth else ""
    return f"""
        WITH RECURSIVE path AS (
            SELECT {_WALKED}, 0 AS depth FROM messages m WHERE m.id = {start}
            UNION ALL
            SELECT {_WALKED}, path.depth + 1
              FROM path CROSS JOIN LATERAL (
                  SELECT * FROM messages WHERE id = path.parent_id LIMIT 1
              ) m{bound}
        )
    """


# The room's current path, from its leaf.
LEAF = "(SELECT leaf_id FROM chatrooms WHERE id = %(room)s)"


async def path_page(
    conn: AsyncConnection, room_id: uuid.UUID, limit: int, before_seq: int | None
) -> list[Message]:
    """The ``limit`` latest messages of the room's current path (before ``before_seq``),
    oldest first."""
    async with conn.cursor(row_factory=class_row(Message)) as cur:
        await cur.execute(
            path_cte(LEAF)
            + f"""
            SELECT {MESSAGE_COLUMNS} FROM (
                SELECT * FROM path WHERE %(before)s::bigint IS NULL OR seq < %(before)s
                 ORDER BY seq DESC LIMIT %(limit)s
            ) latest ORDER BY seq
            """,
            {"room": room_id, "before": before_seq, "limit": limit},
        )
        return await cur.fetchall()


async def siblings(
    conn: AsyncConnection, room_id: uuid.UUID, message_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """For each of ``message_ids`` that has siblings (messages of the same role under the
    same parent: the versions of an edited prompt, the regenerations of a reply), all of
    them, oldest first, itself included."""
    cur = await conn.execute(
        """
        SELECT m.id, array_agg(s.id ORDER BY s.seq)
          FROM messages m
          JOIN messages s ON s.chatroom_id = m.chatroom_id AND s.role = m.role
                         AND s.parent_id IS NOT DISTINCT FROM m.parent_id
         WHERE m.chatroom_id = %s AND m.id = ANY(%s)
         GROUP BY m.id HAVING count(*) > 1
        """,
        (room_id, message_ids),
    )
    return {row[0]: list(row[1]) for row in await cur.fetchall()}


async def history_from(
    conn: AsyncConnection, start: uuid.UUID | None, turns: int
) -> list[tuple[str, str]]:
    """(role, content) of the latest ``turns`` completed messages on the path ending at
    ``start`` (included), newest first; none without a start."""
    if start is None or turns == 0:
        return []
    cur = await conn.execute(
        path_cte("%(start)s", max_depth="%(depth)s")
        + """
        SELECT role, content FROM path WHERE status = 'completed' AND content <> ''
         ORDER BY depth LIMIT %(turns)s
        """,
        {"start": start, "depth": 4 * turns + 4, "turns": turns},
    )
    return [(row[0], row[1]) for row in await cur.fetchall()]


async def newest_under(
    conn: AsyncConnection, room_id: uuid.UUID, message_id: uuid.UUID
) -> uuid.UUID | None:
    """The newest message of the subtree of ``message_id`` (itself included): where the
    user last was on that branch. None when the message is not in the room."""
    cur = await conn.execute(
        """
        WITH RECURSIVE below AS (
            SELECT id, seq FROM messages WHERE id = %s AND chatroom_id = %s
            UNION ALL
            SELECT m.id, m.seq FROM messages m JOIN below ON m.parent_id = below.id
        )
        SELECT id FROM below ORDER BY seq DESC LIMIT 1
        """,
        (message_id, room_id),
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def set_leaf(conn: AsyncConnection, room_id: uuid.UUID, leaf_id: uuid.UUID) -> None:
    await conn.execute("UPDATE chatrooms SET leaf_id = %s WHERE id = %s", (leaf_id, room_id))
