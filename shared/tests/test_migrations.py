import threading
from pathlib import Path

import psycopg
import pytest

from shared.migrations import MigrationError, migrate


def write(folder: Path, name: str, sql: str) -> None:
    (folder / name).write_text(sql)


def tables(database_url: str, schema: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
    return {r[0] for r in rows}


def test_applies_pending_files_in_order_into_the_schema(database_url, schema, tmp_path):
    write(tmp_path, "20260101_0000_a.sql", "CREATE TABLE a (id int);")
    write(tmp_path, "20260102_0000_b.sql", "CREATE TABLE b (a_id int); INSERT INTO a VALUES (1);")
    assert migrate(database_url, schema, tmp_path) == ["20260101_0000_a.sql", "20260102_0000_b.sql"]
    assert {"a", "b", "schema_migrations"} <= tables(database_url, schema)
    assert migrate(database_url, schema, tmp_path) == []


def test_a_changed_applied_file_is_refused(database_url, schema, tmp_path):
    write(tmp_path, "20260101_0000_a.sql", "CREATE TABLE a (id int);")
    migrate(database_url, schema, tmp_path)
    write(tmp_path, "20260101_0000_a.sql", "CREATE TABLE a (id bigint);")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(database_url, schema, tmp_path)


def test_a_failing_file_rolls_back_alone(database_url, schema, tmp_path):
    write(tmp_path, "20260101_0000_a.sql", "CREATE TABLE a (id int);")
    write(tmp_path, "20260102_0000_b.sql", "CREATE TABLE b (id int); SELECT no_such_function();")
    with pytest.raises(psycopg.Error):
        migrate(database_url, schema, tmp_path)
    assert tables(database_url, schema) == {"a", "schema_migrations"}
    write(tmp_path, "20260102_0000_b.sql", "CREATE TABLE b (id int);")
    assert migrate(database_url, schema, tmp_path) == ["20260102_0000_b.sql"]


def test_badly_named_file_is_refused(database_url, schema, tmp_path):
    write(tmp_path, "create_things.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match="YYYYMMDD_HHMM_slug"):
        migrate(database_url, schema, tmp_path)


def test_concurrent_runs_apply_each_file_once(database_url, schema, tmp_path):
    write(tmp_path, "20260101_0000_a.sql", "CREATE TABLE a (id int); SELECT pg_sleep(0.3);")
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrate(database_url, schema, tmp_path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert sorted(len(r) for r in results) == [0, 0, 1]
