from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg import sql

from shared.db import open_pool
from shared.migrations import MESSAGING, migrate


@pytest.fixture
def schema() -> str:
    return "t_" + uuid.uuid4().hex[:12]


@pytest.fixture
async def messaging_pool(database_url: str, schema: str, tmp_path) -> AsyncIterator:
    """A schema with the outbox and inbox tables plus a `effects` table for handlers."""
    (tmp_path / "20990101_0000_effects.sql").write_text(
        "CREATE TABLE effects (event_id uuid PRIMARY KEY, note text);"
    )
    migrate(database_url, schema, [MESSAGING, tmp_path])
    pool = await open_pool(database_url, schema, min_size=1, max_size=6)
    try:
        yield pool
    finally:
        await pool.close()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
