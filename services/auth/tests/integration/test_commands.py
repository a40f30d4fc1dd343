"""``python -m auth republish | migrate --status | dlq``, through the command's main()."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from auth.__main__ import run
from auth.settings import Settings
from shared import outbox
from shared.db import schema_conninfo
from shared.events import UserRegistered
from shared.testing.cli import command_environment, run_cli


@pytest.fixture(autouse=True)
def environment(monkeypatch, tmp_path, auth_settings: Settings) -> None:
    command_environment(
        monkeypatch,
        tmp_path,
        app_env="test",
        database_url=auth_settings.database_url,
        redis_url=auth_settings.redis_url,
        jwt_secret=auth_settings.jwt_secret,
    )


async def test_republish_sends_auths_event_log_again(auth_settings: Settings) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    conninfo = schema_conninfo(auth_settings.database_url, "auth")
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        event = UserRegistered(
            user_id=uuid.uuid4(), mobile_number="+917373737373", registered_at=since
        )
        event_id = await outbox.add(conn, event, producer="auth")
        await conn.execute(
            "UPDATE outbox SET published_at = now() WHERE event_id = %s", (event_id,)
        )
        await conn.commit()

        result = await run_cli(run, "republish", "--since", since.isoformat())

        cur = await conn.execute("SELECT published_at FROM outbox WHERE event_id = %s", (event_id,))
        assert await cur.fetchone() == (None,)  # the relay sends it again
    assert result.code == 0, result.err
    assert '"event": "outbox.republish_queued"' in result.err


async def test_migrate_status_shows_every_migration_applied() -> None:
    result = await run_cli(run, "migrate", "--status")
    assert result.code == 0, result.err
    *lines, summary = result.out.splitlines()
    assert lines and all(line.startswith("applied ") for line in lines)
    assert any(line.endswith("_create_users.sql") for line in lines)
    assert summary == f"auth: {len(lines)} applied"


async def test_dlq_reads_the_dead_letters_of_group_auth_on_billing_events() -> None:
    result = await run_cli(run, "dlq", "list", "--stream", "billing.events")
    assert result.code == 0, result.err
    assert (await run_cli(run, "dlq", "list", "--stream", "chat.events")).code == 2
