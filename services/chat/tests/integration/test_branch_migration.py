"""The branches migration carries every existing chat over unchanged: a database migrated
to just before it, with a regenerated reply, reads the same path after it."""

import shutil
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from chat import repository
from shared.db import Database, open_pool
from shared.migrations import MESSAGING, TIER_PROJECTION, migrate

OWN = Path(__file__).resolve().parents[2] / "migrations"
BRANCHES = "20261129_1700_branches.sql"


async def test_an_existing_chat_reads_the_same_after_the_branches_migration(database_url, tmp_path):
    before = tmp_path / "before"
    before.mkdir()
    for path in OWN.glob("*.sql"):
        if path.name < BRANCHES:
            shutil.copy(path, before / path.name)
    schema = f"branches_{uuid.uuid4().hex[:8]}"
    user, room = uuid.uuid4(), uuid.uuid4()
    p1, r1, r1b, p2, r2 = (uuid.uuid4() for _ in range(5))
    try:
        migrate(database_url, schema, [MESSAGING, TIER_PROJECTION, before])
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(schema)))
            conn.execute(
                "INSERT INTO chatrooms (id, user_id, name) VALUES (%s, %s, 'old')", (room, user)
            )
            insert = (
                "INSERT INTO messages (id, chatroom_id, user_id, role, content, status,"
                " reply_to) VALUES (%s, %s, %s, %s, %s, 'completed', %s)"
            )
            # q1, its reply regenerated (r1 superseded by r1b), then q2 and its reply.
            for mid, role, text, to in [
                (p1, "USER", "q1", None),
                (r1, "GEMINI", "a1", p1),
                (r1b, "GEMINI", "a1 again", p1),
                (p2, "USER", "q2", None),
                (r2, "GEMINI", "a2", p2),
            ]:
                conn.execute(insert, (mid, room, user, role, text, to))
            conn.execute("UPDATE messages SET superseded_by = %s WHERE id = %s", (r1b, r1))

        assert BRANCHES in migrate(database_url, schema, [MESSAGING, TIER_PROJECTION, OWN])

        pool = await open_pool(database_url, schema, min_size=1, max_size=2)
        try:
            async with Database(pool).transaction() as tx:
                page = await repository.path_page(tx.conn, room, 50, None)
                siblings = await repository.siblings(tx.conn, room, [m.id for m in page])
                history = await repository.history_from(tx.conn, r2, 10)
        finally:
            await pool.close()
        assert [m.id for m in page] == [p1, r1b, p2, r2]
        assert [m.parent_id for m in page] == [None, p1, r1b, p2]
        assert siblings == {r1b: [r1, r1b]}
        assert history == [("GEMINI", "a2"), ("USER", "q2"), ("GEMINI", "a1 again"), ("USER", "q1")]
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
