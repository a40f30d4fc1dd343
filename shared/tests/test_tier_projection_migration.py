"""The tier projection moved from auth's and chat's own `subscriptions` tables into the one
table shared/sql/tiers defines: a database migrated before the move keeps its rows."""

import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from shared.migrations import MESSAGING, TIER_PROJECTION, discover, migrate

REPO = Path(__file__).resolve().parents[2]
MOVE = "20261129_1410_subscriptions_into_tier_projection.sql"


@pytest.mark.parametrize("service", ["auth", "chat"])
def test_projected_subscriptions_survive_the_move(database_url, tmp_path, service):
    own = REPO / "services" / service / "migrations"
    before = tmp_path / "before"
    before.mkdir()
    for path in own.glob("*.sql"):  # the service's migrations from before the move
        if path.name < MOVE:
            shutil.copy(path, before / path.name)
    schema = f"tiermove_{service}_{uuid.uuid4().hex[:8]}"
    user, end = uuid.uuid4(), datetime.now(UTC) + timedelta(days=30)
    try:
        migrate(database_url, schema, [MESSAGING, before])
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.subscriptions (user_id, status, current_period_end,"
                    " as_of) VALUES (%s, 'active', %s, now())"
                ).format(sql.Identifier(schema)),
                (user, end),
            )
        applied = migrate(database_url, schema, [MESSAGING, TIER_PROJECTION, own])
        assert applied == sorted(
            m.name for m in discover([TIER_PROJECTION, own]) if not (before / m.name).exists()
        )
        assert MOVE in applied
        with psycopg.connect(database_url, autocommit=True) as conn:
            row = conn.execute(
                sql.SQL(
                    "SELECT status, current_period_end FROM {}.tier_projection WHERE user_id = %s"
                ).format(sql.Identifier(schema)),
                (user,),
            ).fetchone()
            left = conn.execute(
                "SELECT count(*) FROM information_schema.tables"
                " WHERE table_schema = %s AND table_name = 'subscriptions'",
                (schema,),
            ).fetchone()
        assert row == ("active", end)
        assert left == (0,)  # the service's own copy is gone
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
