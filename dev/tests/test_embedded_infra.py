"""The embedded fallback, forced even where local servers answer, so it is proven anywhere."""

from __future__ import annotations

from pathlib import Path

import psutil
import psycopg
import pytest
import redis
from psycopg.conninfo import conninfo_to_dict

from dev.infra import ensure_infra
from dev.proc import free_port, port_is_open
from shared.migrations import migrate

pytestmark = pytest.mark.slow


def test_embedded_postgres_and_valkey_start_serve_and_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    pg_port, redis_port = free_port(), free_port()
    monkeypatch.setenv("EMBEDDED_POSTGRES_PORT", str(pg_port))
    monkeypatch.setenv("EMBEDDED_REDIS_PORT", str(redis_port))
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "20260101_0000_create_notes.sql").write_text(
        "CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL);"
    )

    infra = ensure_infra(tmp_path / "data", "always")
    pgdata = (tmp_path / "data" / "postgres").resolve()
    assert len(str(pgdata)) < 90, "the test needs a socket path the kernel takes"
    try:
        assert infra.embedded == {"postgres", "redis"}
        # Over the server's Unix socket in its data directory (a short enough path here),
        # on the port it also listens on over TCP.
        where = conninfo_to_dict(infra.database_url)
        assert (where["host"], where["port"]) == (str(pgdata), str(pg_port))
        assert port_is_open(pg_port)
        assert infra.redis_url == f"redis://127.0.0.1:{redis_port}"

        assert migrate(infra.database_url, "demo", migrations) == ["20260101_0000_create_notes.sql"]
        with psycopg.connect(infra.database_url) as conn:
            conn.execute("INSERT INTO demo.notes VALUES (1, 'hello')")
            assert conn.execute("SELECT body FROM demo.notes").fetchall() == [("hello",)]

        client = redis.Redis.from_url(infra.redis_url)
        entry_id = client.xadd("demo.events", {"type": "NoteAdded"})
        assert client.xrange("demo.events") == [(entry_id, {b"type": b"NoteAdded"})]
        client.close()
    finally:
        infra.stop()

    for proc in infra.processes.values():
        assert proc.returncode is not None
        assert not psutil.pid_exists(proc.pid)
    assert not port_is_open(pg_port)
    assert not port_is_open(redis_port)
    infra.stop()  # idempotent
