"""The command line every service shares, run through ``main()`` against real Postgres and
Redis: the dead-letter commands and ``migrate --status``."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from shared.cli import main
from shared.consumer import StreamConsumer
from shared.delivery import inbox_processor
from shared.events import UserRegistered, encode
from shared.events.envelope import to_json
from shared.migrations import migrate
from shared.settings import ServiceSettings
from shared.testing.cli import CliResult, command_environment, run_cli

SERVICE = "svc"  # its consumer group too


@pytest.fixture(autouse=True)
def environment(monkeypatch, tmp_path, redis_url, database_url, jwt_secret) -> None:
    command_environment(
        monkeypatch,
        tmp_path,
        app_env="test",
        redis_url=redis_url,
        database_url=database_url,
        jwt_secret=jwt_secret,
    )


@pytest.fixture
async def stream(redis) -> AsyncIterator[str]:
    name = f"s{uuid.uuid4().hex[:10]}.events"
    yield name
    await redis.delete(name, f"{name}.dlq", f"{name}.dlq.replayed")


async def cli(*argv: str, consumes: Sequence[str] = (), **options) -> CliResult:
    """``python -m svc <argv>``, in-process."""

    def service_main(args: list[str]) -> None:
        main(
            SERVICE,
            settings_cls=ServiceSettings,
            create_app=lambda settings: None,
            consumes=consumes,
            argv=args,
            **options,
        )

    return await run_cli(service_main, *argv)


def registered() -> UserRegistered:
    return UserRegistered(
        user_id=uuid.uuid4(), mobile_number="+917373737373", registered_at=datetime.now(UTC)
    )


async def publish(redis, stream: str, envelope: str) -> str:
    return await redis.xadd(stream, {"type": "UserRegistered", "envelope": envelope})


def consumer(redis, stream: str, group: str, process) -> StreamConsumer:
    return StreamConsumer(
        redis,
        group=group,
        name=f"{group}-1",
        streams=[stream],
        types={"UserRegistered"},
        process=process,
        claim_idle_ms=100,
        max_deliveries=2,
    )


async def dead_lettered(redis, stream: str, c: StreamConsumer) -> None:
    """Run ``c`` until it has given up on an entry."""
    async with asyncio.timeout(20):
        while await redis.xlen(f"{stream}.dlq") == 0:
            await c.drain()
            await asyncio.sleep(0.15)  # past claim_idle_ms: the failed entry is reclaimed


async def notes(pool) -> list[str]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT note FROM effects")
        return [row[0] for row in await cur.fetchall()]


async def test_dead_letter_is_listed_then_replayed_once_for_its_group_only_then_purged(
    messaging_pool, redis, stream
):
    broken = True

    async def on_registered(event: UserRegistered, delivery) -> None:
        if broken:
            raise RuntimeError("the bug")
        await delivery.tx.conn.execute(
            "INSERT INTO effects (event_id, note) VALUES (gen_random_uuid(), %s)",
            (str(event.user_id),),
        )

    ours = consumer(
        redis,
        stream,
        SERVICE,
        inbox_processor(messaging_pool, {UserRegistered: on_registered}, None),
    )
    others_saw: list[str] = []

    async def other_group(envelope, event, stream_name) -> None:
        others_saw.append(str(envelope.id))

    other = consumer(redis, stream, "other", other_group)
    event = registered()
    envelope = encode(event, producer="auth")
    original_id = await publish(redis, stream, to_json(envelope))
    await other.drain()
    await dead_lettered(redis, stream, ours)

    listed = await cli("dlq", "list", consumes=[stream])
    assert listed.code == 0, listed.err
    [line] = listed.out.splitlines()
    dlq_id = line.split()[0]
    assert f"{stream}  original={original_id}  type=UserRegistered" in line
    assert "replayed=no" in line
    assert "reason=handler failed: RuntimeError: the bug" in line

    shown = await cli("dlq", "show", dlq_id, consumes=[stream])
    assert shown.code == 0, shown.err
    letter = json.loads(shown.out)
    assert letter["original_id"] == original_id
    assert letter["group"] == SERVICE
    assert letter["deliveries"] == 2  # max_deliveries: dead-lettered at the last one
    assert letter["fields"]["envelope"]["id"] == str(envelope.id)
    assert letter["fields"]["envelope"]["payload"]["mobileNumber"] == "+91******7373"

    broken = False  # the cause is fixed (a new release, say)
    replayed = await cli("dlq", "replay", dlq_id, consumes=[stream])
    assert replayed.code == 0, replayed.err
    assert f"replayed {dlq_id} to {stream}" in replayed.out
    assert '"event": "dlq.replayed"' in replayed.err
    [new_id] = await redis.hvals(f"{stream}.dlq.replayed")

    await ours.drain()
    await other.drain()
    assert await notes(messaging_pool) == [str(event.user_id)]
    assert others_saw == [str(envelope.id)]  # the original only: the replay is not theirs
    assert (await redis.xpending(stream, "other"))["pending"] == 0

    again = await cli("dlq", "replay", dlq_id, consumes=[stream])
    assert again.code == 0, again.err
    assert f"already replayed as {new_id}: nothing done" in again.out
    assert await redis.xlen(stream) == 2  # the original and one replay
    assert await ours.drain() == 0
    assert await notes(messaging_pool) == [str(event.user_id)]

    listed = await cli("dlq", "list", consumes=[stream])
    assert f"replayed={new_id}" in listed.out

    purged = await cli("dlq", "purge", dlq_id, consumes=[stream])
    assert purged.code == 0, purged.err
    assert f"purged {dlq_id}" in purged.out
    assert await redis.xlen(f"{stream}.dlq") == 0
    assert not await redis.exists(f"{stream}.dlq.replayed")
    assert "no dead letters" in (await cli("dlq", "list", consumes=[stream])).out
    purged_again = await cli("dlq", "purge", dlq_id, consumes=[stream])
    assert purged_again.code == 0
    assert "nothing to purge" in purged_again.out


async def test_replay_all_and_purge_all_touch_this_groups_dead_letters_only(redis, stream):
    async def never(envelope, event, stream_name) -> None:
        raise AssertionError("undecodable: never handed over")

    await redis.xadd(stream, {"type": "UserRegistered", "envelope": "{broken"})
    for group in (SERVICE, "other"):  # each gives up on it at once
        await consumer(redis, stream, group, never).drain()
    assert await redis.xlen(f"{stream}.dlq") == 2

    listed = await cli("dlq", "list", "--stream", stream, consumes=[stream])
    [line] = listed.out.splitlines()
    assert "reason=undecodable" in line
    [(others_id, _)] = [
        (entry_id, fields)
        for entry_id, fields in await redis.xrange(f"{stream}.dlq")
        if fields["group"] == "other"
    ]

    first = await cli("dlq", "replay", "--all", consumes=[stream])
    second = await cli("dlq", "replay", "--all", consumes=[stream])
    assert first.out.splitlines()[-1] == "1 dead letters replayed, 0 already replayed before"
    assert second.out.splitlines()[-1] == "0 dead letters replayed, 1 already replayed before"
    [(_, replay)] = (await redis.xrange(stream))[1:]
    assert replay["replay_group"] == SERVICE

    not_ours = await cli("dlq", "show", others_id, consumes=[stream])
    assert not_ours.code == 1
    assert "belongs to consumer group other" in not_ours.err

    purged = await cli("dlq", "purge", "--all", consumes=[stream])
    assert purged.code == 0, purged.err
    assert [entry_id for entry_id, _ in await redis.xrange(f"{stream}.dlq")] == [others_id]


async def test_dlq_mistakes_are_plain_messages_with_exit_codes(monkeypatch, stream, dead_port):
    missing = await cli("dlq", "show", "1-0", consumes=[stream])
    assert (missing.code, missing.out) == (1, "")
    assert f"no dead letter 1-0 on {stream}.dlq" in missing.err
    assert (await cli("dlq", "replay", "1-0", consumes=[stream])).code == 1
    bad_id = await cli("dlq", "show", "latest", consumes=[stream])
    assert bad_id.code == 2
    assert "is not a stream entry id" in bad_id.err
    assert (await cli("dlq", "list", "--stream", "other.events", consumes=[stream])).code == 2
    assert (await cli("dlq", "replay", consumes=[stream])).code == 2  # an id or --all
    assert (await cli("dlq", "list")).code == 2  # a service that consumes nothing has no dlq

    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{dead_port}/0")
    down = await cli("dlq", "list", consumes=[stream])
    assert down.code == 1
    assert "Redis is not available" in down.err
    assert "Traceback" not in down.err


@pytest.fixture
def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- migrate --status ----------------------------------------------------------------------


@pytest.fixture
def drop_schema(database_url: str, schema: str) -> Iterator[None]:
    yield
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def schema_exists(database_url: str, schema: str) -> bool:
    with psycopg.connect(database_url) as conn:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        return found.fetchone() is not None


async def test_migrate_status_lists_applied_and_pending_and_applies_nothing(
    database_url, schema, tmp_path: Path, drop_schema
):
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "20990101_0000_first.sql").write_text("CREATE TABLE first (id int);")

    async def status() -> CliResult:
        return await cli("migrate", "--status", schema=schema, migrations_dir=folder)

    never = await status()
    assert never.code == 0, never.err
    assert [line.split() for line in never.out.splitlines()] == [
        ["pending", "20990101_0000_first.sql"],
        [f"{schema}:", "1", "pending"],
    ]
    assert not schema_exists(database_url, schema)  # read only: not even the schema

    migrate(database_url, schema, folder)
    (folder / "20990102_0000_second.sql").write_text("CREATE TABLE second (id int);")
    result = await status()
    assert result.code == 0, result.err
    applied, pending, summary = result.out.splitlines()
    assert applied.startswith("applied  20") and applied.endswith(" 20990101_0000_first.sql")
    assert pending.split() == ["pending", "20990102_0000_second.sql"]
    assert summary == f"{schema}: 1 applied, 1 pending"
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            sql.SQL("SELECT name FROM {}.schema_migrations").format(sql.Identifier(schema))
        ).fetchall()
    assert rows == [("20990101_0000_first.sql",)]

    (folder / "20990101_0000_first.sql").write_text("CREATE TABLE first (id bigint);")
    changed = await status()
    assert changed.code == 1  # `migrate` would refuse to run
    assert changed.out.splitlines()[0].startswith("changed ")
