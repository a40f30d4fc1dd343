"""A statement prepared while chat's tables were empty stays cheap as they grow.

Chat's connections prepare their statements (psycopg does after a few runs) and Postgres
then keeps one generic plan per statement for the life of the connection. A plan is made
again only when the table's statistics change, and a server without autovacuum never
changes them. ``make bench`` found two plans that were right for an empty table and wrong
ever after: walking a chat's path hashed the whole messages table at every step, and
completing a reply read every pending reply to find the one with its id. Prompts and
completions slowed down with every message stored.

Here the plans are made on empty tables (generic plans forced, prepared at once), the
tables then fill up, and the transaction's own counters (``pg_stat_xact_user_tables``)
say how many rows the same statements read.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from chat import repository
from shared.db import schema_conninfo
from shared.migrations import MESSAGING, TIER_PROJECTION, migrate

OWN = Path(__file__).resolve().parents[2] / "migrations"
PATH_LENGTH = 60  # messages on the walked chat's path
BACKLOG = 3000  # pending replies in other rooms


@pytest.fixture
async def empty_schema(database_url: str) -> AsyncIterator[str]:
    schema = f"plans_{uuid.uuid4().hex[:8]}"
    migrate(database_url, schema, [MESSAGING, TIER_PROJECTION, OWN])
    try:
        yield schema
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def fill(database_url: str, schema: str, room: uuid.UUID, user: uuid.UUID) -> list[uuid.UUID]:
    """A room whose path is PATH_LENGTH messages long, and BACKLOG rooms each with a pending
    reply; returns the path's ids, oldest first."""
    path = [uuid.uuid4() for _ in range(PATH_LENGTH)]
    with psycopg.connect(schema_conninfo(database_url, schema), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO chatrooms (id, user_id, name) VALUES (%s, %s, 'walked')", (room, user)
        )
        for i, mid in enumerate(path):
            conn.execute(
                "INSERT INTO messages (id, chatroom_id, user_id, role, content, status, parent_id)"
                " VALUES (%s, %s, %s, %s, %s, 'completed', %s)",
                (
                    mid,
                    room,
                    user,
                    "USER" if i % 2 == 0 else "GEMINI",
                    f"turn {i}",
                    path[i - 1] if i else None,
                ),
            )
        conn.execute("UPDATE chatrooms SET leaf_id = %s WHERE id = %s", (path[-1], room))
        conn.execute(
            """
            WITH rooms AS (
                INSERT INTO chatrooms (id, user_id, name)
                SELECT gen_random_uuid(), %s, 'backlog ' || n FROM generate_series(1, %s) n
                RETURNING id
            ), prompts AS (
                INSERT INTO messages (id, chatroom_id, user_id, role, content, status)
                SELECT gen_random_uuid(), id, %s, 'USER', 'q', 'completed' FROM rooms
                RETURNING id, chatroom_id
            )
            INSERT INTO messages
                (id, chatroom_id, user_id, role, content, status, reply_to, parent_id)
            SELECT gen_random_uuid(), chatroom_id, %s, 'GEMINI', '', 'queued', id, id
              FROM prompts
            """,
            (user, BACKLOG, user, user),
        )
    return path


async def rows_read(conn: psycopg.AsyncConnection) -> tuple[int, int]:
    """(rows read by sequential scans, rows fetched through indexes) of the messages table,
    in this transaction so far."""
    cur = await conn.execute(
        "SELECT seq_tup_read, idx_tup_fetch FROM pg_stat_xact_user_tables"
        " WHERE relid = 'messages'::regclass"
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0] or 0), int(row[1] or 0)


async def test_statements_planned_on_empty_tables_read_only_their_rows(database_url, empty_schema):
    user, room = uuid.uuid4(), uuid.uuid4()
    today = datetime.now(UTC).date()
    conn = await psycopg.AsyncConnection.connect(
        schema_conninfo(database_url, empty_schema), autocommit=True, prepare_threshold=0
    )
    try:
        await conn.execute("SET plan_cache_mode = force_generic_plan")

        async def walk(reply_id: uuid.UUID, leaf: uuid.UUID) -> dict[str, int]:
            """Each statement once; the rows it read."""
            reads: dict[str, int] = {}

            async def step(name: str, call) -> None:
                before = await rows_read(conn)
                await call
                seq, idx = await rows_read(conn)
                reads[name] = seq - before[0] + idx - before[1]

            await step("prompt_context", repository.prompt_context(conn, room, user, today, 20))
            await step("path_page", repository.path_page(conn, room, 50, None))
            await step("history_from", repository.history_from(conn, leaf, 20))
            done = {"text": "a", "finish_reason": "STOP", "prompt_tokens": 1, "output_tokens": 1}
            await step("complete_reply", repository.complete_reply(conn, reply_id, **done))
            failed = {"status": "failed", "code": "x", "message": "x"}
            await step("fail_reply", repository.fail_reply(conn, reply_id, **failed))
            await step("cancel_reply", repository.cancel_reply(conn, reply_id, "a"))
            return reads

        # The plans are made now, on empty tables, and cached by the connection.
        await walk(uuid.uuid4(), uuid.uuid4())
        path = fill(database_url, empty_schema, room, user)
        async with conn.transaction():
            reads = await walk(uuid.uuid4(), path[-1])
    finally:
        await conn.close()

    # A walk reads its path (prompt_context also counts the room's prompts, reading the
    # room's messages once more); a completion reads at most its own reply. A plan that
    # scans the table or the pending replies reads thousands.
    assert reads["prompt_context"] <= 2 * PATH_LENGTH + 10, reads
    assert reads["path_page"] <= PATH_LENGTH + 10, reads
    assert reads["history_from"] <= PATH_LENGTH + 10, reads
    for name in ("complete_reply", "fail_reply", "cancel_reply"):
        assert reads[name] <= 1, reads
